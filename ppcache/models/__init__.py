from .flux_transformer import FluxTransformer2DModel
from .loading import load_module, save_module

__all__ = ["FluxTransformer2DModel", "load_module", "save_module"]

from . import sd3_compat  # noqa: E402,F401  (fixes ppdiffusers' SD3 transformer for diffusers checkpoints)
