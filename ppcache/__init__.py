"""ppcache: training-free step/block caching for diffusion transformers on PaddlePaddle."""
from . import _compat

_compat.setup()

from .errors import CheckpointError, ConfigError, PPCacheError, UnsupportedModelError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "PPCacheError", "UnsupportedModelError", "__version__"]
