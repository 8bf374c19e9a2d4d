"""Build Paddle modules from diffusers/transformers-format directories (config.json + safetensors)."""
import contextlib
import inspect
import os

import paddle

from ..checkpoint import load_state_into, read_checkpoint_dir, read_config, save_model_dir
from ..errors import CheckpointError

DTYPES = {"float32": paddle.float32, "fp32": paddle.float32, "float16": paddle.float16, "fp16": paddle.float16,
          "bfloat16": paddle.bfloat16, "bf16": paddle.bfloat16}
SAVE_TAGS = {paddle.float32: "F32", paddle.float16: "F16", paddle.bfloat16: "BF16"}


def resolve_dtype(dtype):
    if dtype is None or isinstance(dtype, paddle.dtype):
        return dtype or paddle.float32
    if str(dtype) in DTYPES:
        return DTYPES[str(dtype)]
    raise CheckpointError(f"unknown dtype {dtype!r}: use one of float32, float16, bfloat16")


@contextlib.contextmanager
def default_dtype(dtype):
    previous = paddle.get_default_dtype()
    paddle.set_default_dtype(dtype)
    try:
        yield
    finally:
        paddle.set_default_dtype(previous)


def init_kwargs(cls, config):
    """The config entries that `cls.__init__` accepts (drops `_class_name`, `_diffusers_version`, ...)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in config.items() if not k.startswith("_")}
    return {k: v for k, v in config.items() if k in params}


def build_module(cls, config, dtype=paddle.float32):
    """Constructs `cls` from a config dict: diffusers-style (kwargs) or transformers-style (a config object)."""
    config_class = getattr(cls, "config_class", None)
    with default_dtype(dtype):
        try:
            if config_class is not None and "config" in inspect.signature(cls.__init__).parameters:
                module = cls(config_class(**{k: v for k, v in config.items() if not k.startswith("_")}))
            else:
                module = cls(**init_kwargs(cls, config))
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"config.json does not describe a valid {cls.__name__}: {error}") from None
    return module


def load_module(cls, directory, dtype=None, ignore_missing=(), ignore_unexpected=()):
    """Reads `directory`/config.json and weights into a new `cls` in eval mode."""
    dtype = resolve_dtype(dtype)
    if not os.path.isdir(directory):
        raise CheckpointError(f"model directory not found: {directory}")
    config = read_config(directory)
    tensors = read_checkpoint_dir(directory)
    module = build_module(cls, config, paddle.float32 if dtype == paddle.bfloat16 else dtype)
    load_state_into(module, tensors, source=directory, ignore_missing=ignore_missing,
                    ignore_unexpected=ignore_unexpected)
    if dtype != paddle.float32:
        module.to(dtype=dtype)
    module.eval()
    return module


def module_config(module):
    config = getattr(module, "config", None)
    if config is None:
        raise TypeError(f"{type(module).__name__} has no config to save")
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    # `_use_default_values` tells diffusers' loader to drop those keys for its own defaults: every value saved here
    # is the module's own (a key registered after construction would otherwise be replaced on loading)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items()
            if k != "_use_default_values"}


def save_module(module, directory, dtype=paddle.float32, weights_name="diffusion_pytorch_model.safetensors",
                max_shard_bytes=None, class_name=None):
    config = module_config(module)
    config["_class_name"] = class_name or type(module).__name__
    save_model_dir(module, directory, config, SAVE_TAGS[resolve_dtype(dtype)], weights_name, max_shard_bytes)


class PretrainedMixin:
    """`from_pretrained(dir, paddle_dtype=...)` / `save_pretrained(dir)` for ppcache's own models."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, paddle_dtype=None, subfolder=None, **unused):
        directory = str(pretrained_model_name_or_path)
        if subfolder:
            directory = os.path.join(directory, subfolder)
        return load_module(cls, directory, paddle_dtype)

    def save_pretrained(self, save_directory, paddle_dtype=paddle.float32, max_shard_bytes=None, **unused):
        save_module(self, str(save_directory), paddle_dtype, max_shard_bytes=max_shard_bytes)
