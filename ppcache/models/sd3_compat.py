"""Make ppdiffusers 0.29's SD3 transformer load diffusers-format (torch) SD3 checkpoints exactly.

Findings (checked against diffusers 0.36 on random tiny models, max |delta| ~2e-6 in fp32):

* The math is the same: patch embedding + cropped sin-cos position table, timestep/pooled embedding,
  AdaLN-Zero joint blocks (sample tokens first, then context tokens, in the joint attention), the
  context-pre-only last block, AdaLN-continuous output norm and unpatchify all agree.
* Key names agree and 2-D `nn.Linear` weights only need the usual transpose (done by `load_state_into`).
* One parameter-layout bug: ppdiffusers' `AdaLayerNormContinuous(..., elementwise_affine=False, bias=True)`
  builds `nn.LayerNorm(weight_attr=False, bias_attr=True)`, i.e. a LayerNorm *with* a (zero-initialised)
  bias. Diffusers' `LayerNorm(elementwise_affine=False, bias=True)` has neither weight nor bias. So the
  Paddle SD3 model has two extra tensors a diffusers checkpoint lacks: `norm_out.norm.bias` and
  `transformer_blocks.<last>.norm1_context.norm.bias`. Being zero they change nothing numerically, but
  strict loading fails and saving would write tensors diffusers does not expect. Fix: drop them.
* Config keys diffusers added after 0.29 (`dual_attention_layers`, `qk_norm`: SD3.5's MMDiT-X blocks and
  RMS q/k norm) have no implementation in PyPI's ppdiffusers 0.29.0 (PPDiffusers from the PaddleMIX source tree
  has both). Where the installed class lacks one, it used to be dropped silently (SD3.5 would then load with
  missing/unused weights or run the wrong math); now a non-default value raises `UnsupportedModelError`, and the
  default values (`[]`/`()`, `None`) written by diffusers are accepted. Keys the class implements pass through.
* `INFERENCE_OPTIMIZE=True` makes ppdiffusers build `SimplifiedSD3` (paddlemix Triton kernels, GPU only,
  no `transformer_blocks`, a 24-layer weight remap). It cannot run on CPU and ppcache needs the per-block
  path, so construction always uses the reference blocks (with a warning if the variable is set).

`apply()` installs the fix on `ppdiffusers.models.transformer_sd3.SD3Transformer2DModel` (idempotent);
importing this module calls it. Every part is feature-detected on the installed class, not on a version string:
only the keys its `__init__` lacks are added, and only biases that exist are dropped. Both `ppcache.models.load_module(SD3Transformer2DModel, dir)` and
ppdiffusers' own `from_pretrained` on a diffusers directory then load strictly.
"""
import inspect
import logging
import os

from ..errors import UnsupportedModelError

logger = logging.getLogger(__name__)

# diffusers-only SD3 config keys and the values that mean "feature off" (what ppdiffusers implements).
_UNSUPPORTED_DEFAULTS = {"dual_attention_layers": ((), []), "qk_norm": (None,)}


def sd3_transformer_class():
    from ppdiffusers.models.transformer_sd3 import SD3Transformer2DModel

    return SD3Transformer2DModel


def missing_config_keys(cls):
    """The diffusers-only keys that `cls.__init__` does not implement (all of them on PyPI's ppdiffusers 0.29.0)."""
    original = getattr(cls.__init__, "_ppcache_original", cls.__init__)
    implemented = inspect.signature(original).parameters
    return {key: off for key, off in _UNSUPPORTED_DEFAULTS.items() if key not in implemented}


def check_config(config, cls=None):
    """Raises UnsupportedModelError when a diffusers SD3 config uses features the installed class lacks."""
    missing = missing_config_keys(cls or sd3_transformer_class())
    for key, off_values in missing.items():
        value = config.get(key)
        if value is not None and not any(value == off for off in off_values):
            raise UnsupportedModelError(
                f"SD3 transformer config sets {key}={value!r} (SD3.5 MMDiT-X / q-k RMSNorm), which the installed "
                f"ppdiffusers' SD3Transformer2DModel does not implement; use SD3-medium style checkpoints, or "
                f"install PPDiffusers from the PaddleMIX source tree")


def strip_affine_free_biases(model):
    """Replaces LayerNorms that have a bias but no weight (ppdiffusers quirk) with plain LayerNorms."""
    import paddle.nn as nn
    from ppdiffusers.models.normalization import AdaLayerNormContinuous

    for layer in model.sublayers(include_self=True):
        norm = getattr(layer, "norm", None)
        if (isinstance(layer, AdaLayerNormContinuous) and isinstance(norm, nn.LayerNorm)
                and norm.weight is None and norm.bias is not None):
            layer.norm = nn.LayerNorm(norm._normalized_shape, epsilon=norm._epsilon,
                                      weight_attr=False, bias_attr=False)


def apply():
    cls = sd3_transformer_class()
    if getattr(cls, "_ppcache_sd3_compat", False):
        return cls
    original_init = cls.__init__
    missing = missing_config_keys(cls)

    def __init__(self, *args, **kwargs):
        check_config({key: kwargs.pop(key) for key in missing if key in kwargs}, cls)
        saved = os.environ.pop("INFERENCE_OPTIMIZE", None)
        if saved == "True":
            logger.warning("INFERENCE_OPTIMIZE=True ignored for SD3Transformer2DModel: its fused path needs "
                           "paddlemix Triton kernels (GPU) and has no per-block layers for ppcache")
        try:
            original_init(self, *args, **kwargs)
        finally:
            if saved is not None:
                os.environ["INFERENCE_OPTIMIZE"] = saved
        strip_affine_free_biases(self)

    # Advertise the original parameters plus the diffusers-only keys the class lacks, so that ppcache's
    # init_kwargs and ppdiffusers' ConfigMixin.from_config pass them through to the check instead of dropping them.
    signature = inspect.signature(original_init)
    params = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    params += [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=off[0]) for key, off in missing.items()]
    params += [p for p in signature.parameters.values() if p.kind == p.VAR_KEYWORD]
    __init__.__signature__ = signature.replace(parameters=params)
    __init__.__doc__ = original_init.__doc__
    __init__._ppcache_original = original_init
    cls.__init__ = __init__
    cls._ppcache_sd3_compat = True
    return cls


def load_sd3_transformer(directory, dtype=None):
    """A ppdiffusers SD3Transformer2DModel from a diffusers-format directory (config.json + safetensors)."""
    from ..checkpoint import read_config
    from .loading import load_module

    check_config(read_config(directory))
    return load_module(apply(), directory, dtype)


apply()
