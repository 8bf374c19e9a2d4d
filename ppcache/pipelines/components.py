"""The components of a diffusers-format pipeline directory (model_index.json + one folder per component), loaded
into Paddle and handed to a pipeline class: which loader takes which component class, in which dtype.
ppcache.pipelines.loading picks the pipeline class; FluxPipeline.from_pretrained builds itself from here."""
import inspect
import json
import os
import warnings

from ..errors import CheckpointError
from ..models.loading import load_module, resolve_dtype

# Families that run on the installed PPDiffusers' own pipeline classes only.
INSTALLED_PIPELINES = ("PixArtAlphaPipeline", "PixArtSigmaPipeline", "WanPipeline", "HunyuanVideoPipeline",
                       "CogVideoXPipeline")


def ppdiffusers_class(name):
    """`ppdiffusers.<name>`, or a CheckpointError saying that the installed ppdiffusers lacks it."""
    import ppdiffusers

    cls = getattr(ppdiffusers, name, None)
    if cls is None:
        # ppcache has pipelines of its own for FLUX and SD3 only
        alternative = "" if name in INSTALLED_PIPELINES else ", or use model.pipeline: ppcache"
        raise CheckpointError(
            f"the installed ppdiffusers {getattr(ppdiffusers, '__version__', '?')} has no {name}: install PPDiffusers "
            f"from the PaddleMIX source tree (first on PYTHONPATH){alternative}")
    return cls


def _tokenizer(class_name):
    from ppdiffusers import transformers as text

    return lambda directory, dtype: getattr(text, class_name).from_pretrained(directory)


def _text_encoder(class_name):
    from ppdiffusers import transformers as text

    def load(directory, dtype):
        # Tied/non-persistent tensors that some exporters write and others do not.
        module = load_module(getattr(text, class_name), directory, dtype,
                             ignore_missing=("encoder.embed_tokens.weight",),
                             ignore_unexpected=("position_ids", "encoder.embed_tokens.weight"))
        return module
    return load


def _diffusers_model(import_path, class_name):
    def load(directory, dtype):
        module = __import__(import_path, fromlist=[class_name])
        return load_module(getattr(module, class_name), directory, dtype)
    return load


def _ppdiffusers_model(class_name):
    return lambda directory, dtype: load_module(ppdiffusers_class(class_name), directory, dtype)


def _scheduler(directory, dtype):
    from .flow_match_scheduler import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_pretrained(directory)


def _ppdiffusers_scheduler(class_name):
    """A PPDiffusers scheduler; a config setting it does not implement is an error (PyPI's 0.29.0
    FlowMatchEulerDiscreteScheduler has a static shift only, so FLUX's dynamic shift would be dropped silently)."""
    def load(directory, dtype):
        from ..checkpoint import read_config

        cls = ppdiffusers_class(class_name)
        config = read_config(directory, "scheduler_config.json")
        accepted = inspect.signature(cls.__init__).parameters
        unknown = sorted(k for k, v in config.items() if not k.startswith("_") and k not in accepted and v)
        if unknown:
            raise CheckpointError(
                f"{directory}: the installed ppdiffusers' {class_name} does not implement {', '.join(unknown)}: "
                "install PPDiffusers from the PaddleMIX source tree, or use model.pipeline: ppcache")
        return cls(**{k: v for k, v in config.items() if k in accepted})
    return load


def installed_loader(class_name):
    """A loader for a component class the installed ppdiffusers exports (models, schedulers) or its `transformers`
    (tokenizers, text encoders), or None."""
    import ppdiffusers
    from ppdiffusers import transformers as text

    if hasattr(ppdiffusers, class_name):
        return _ppdiffusers_scheduler(class_name) if class_name.endswith("Scheduler") else _ppdiffusers_model(class_name)
    if "Tokenizer" in class_name:
        for name in (class_name, class_name[:-len("Fast")] if class_name.endswith("Fast") else None, "AutoTokenizer"):
            if name and hasattr(text, name):
                return _tokenizer(name)
    if hasattr(text, class_name):
        return _text_encoder(class_name)
    return None


COMPONENT_LOADERS = {
    "FlowMatchEulerDiscreteScheduler": _scheduler,
    "CLIPTokenizer": _tokenizer("CLIPTokenizer"),
    "T5TokenizerFast": _tokenizer("T5Tokenizer"),
    "T5Tokenizer": _tokenizer("T5Tokenizer"),
    "CLIPTextModel": _text_encoder("CLIPTextModel"),
    "CLIPTextModelWithProjection": _text_encoder("CLIPTextModelWithProjection"),
    "T5EncoderModel": _text_encoder("T5EncoderModel"),
    "FluxTransformer2DModel": _diffusers_model("ppcache.models.flux_transformer", "FluxTransformer2DModel"),
    "SD3Transformer2DModel": _diffusers_model("ppdiffusers.models.transformer_sd3", "SD3Transformer2DModel"),
    "AutoencoderKL": _diffusers_model("ppdiffusers", "AutoencoderKL"),
}

# What `pipeline="ppdiffusers"` loads differently.
PPDIFFUSERS_LOADERS = {
    "FlowMatchEulerDiscreteScheduler": _ppdiffusers_scheduler("FlowMatchEulerDiscreteScheduler"),
    "FluxTransformer2DModel": _ppdiffusers_model("FluxTransformer2DModel"),
}


def read_model_index(path):
    index_path = os.path.join(path, "model_index.json")
    if not os.path.isdir(path):
        raise CheckpointError(f"model directory not found: {path}")
    try:
        with open(index_path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} has no model_index.json: point --model at a diffusers-format pipeline directory "
            "(e.g. a local copy of black-forest-labs/FLUX.1-dev)") from None
    except ValueError as error:
        raise CheckpointError(f"corrupt {index_path}: {error}") from None


def required_components(cls):
    """The constructor arguments of a pipeline class that have no default."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p.name for p in parameters
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def compute_dtype(dtype):
    """The dtype the pipeline computes in: bfloat16 has no matmul/add kernels in Paddle's CPU build, so on a CPU-only
    build it computes in float32 (the bf16 weights convert exactly), with a one-time notice."""
    import paddle

    from .._compat import is_cpu_only_build

    dtype = resolve_dtype(dtype)
    if dtype == paddle.bfloat16 and is_cpu_only_build():
        warnings.warn("bfloat16 has no CPU kernels in this Paddle build: computing in float32 from the bf16 weights "
                      "(use a GPU build of Paddle for bfloat16)", stacklevel=3)
        return paddle.float32
    return dtype


def build_pipeline(cls, path, index, paddle_dtype=None, installed=False):
    """`cls` built from the components `index` (model_index.json) names under `path`; `installed`: the installed
    PPDiffusers' own classes for the scheduler and the FLUX transformer too."""
    specs = {name: spec for name, spec in index.items()
             if not name.startswith("_") and isinstance(spec, (list, tuple)) and len(spec) == 2}
    missing = [name for name in required_components(cls) if name not in specs]
    if missing:
        raise CheckpointError(f"{path}/model_index.json does not name the component(s) {', '.join(missing)} that "
                              f"{cls.__name__} needs")
    loaders = dict(COMPONENT_LOADERS, **(PPDIFFUSERS_LOADERS if installed else {}))
    dtype = compute_dtype(paddle_dtype)
    components = {}
    for name, (_, class_name) in specs.items():
        if class_name is None:
            components[name] = None
            continue
        load = loaders.get(class_name) or (installed_loader(class_name) if installed else None)
        if load is None:
            raise CheckpointError(f"{path}: component {name!r} has unsupported class {class_name!r}")
        # Tokenizers and the scheduler carry no weights; text encoders run in the pipeline's dtype.
        components[name] = load(os.path.join(path, name), dtype)
    accepted = inspect.signature(cls.__init__).parameters
    pipe = cls(**{name: component for name, component in components.items() if name in accepted})
    # e.g. {"frames": 5}: what a bundled video model was trained on (model_index.json "_ppcache_run")
    pipe._ppcache_run_defaults = dict(index.get("_ppcache_run") or {})
    return pipe
