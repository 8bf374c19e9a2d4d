"""ppcache: training-free step/block caching for diffusion transformers on PaddlePaddle."""
from . import _compat

_compat.setup()

from .api import (  # noqa: E402
    apply_cache,
    apply_firstblock_taylor,
    apply_sort_block,
    apply_teablockcache,
    generation,
    remove_cache,
    summary,
)
from .compiled import compile_blocks, uncompile_blocks  # noqa: E402
from .config import load_config  # noqa: E402
from .parallel import disable_sequence_parallel, enable_sequence_parallel  # noqa: E402
from .pipelines.exports import FluxPipeline, StableDiffusion3Pipeline  # noqa: E402
from .errors import CheckpointError, ConfigError, PPCacheError, UnsupportedModelError  # noqa: E402
from .policies import (  # noqa: E402
    BlockDanceConfig,
    DBCacheConfig,
    DeepCacheConfig,
    EasyCacheConfig,
    FirstBlockTaylorConfig,
    FORAConfig,
    MagCacheConfig,
    PABConfig,
    ScheduleConfig,
    SortBlockConfig,
    TaylorSeerConfig,
    TeaBlockCacheConfig,
    TeaCacheConfig,
    TGateConfig,
)

__version__ = "0.1.0"

__all__ = [
    "apply_cache", "remove_cache", "summary", "generation", "load_config", "FluxPipeline", "StableDiffusion3Pipeline",
    "apply_sort_block", "apply_teablockcache", "apply_firstblock_taylor",
    "enable_sequence_parallel", "disable_sequence_parallel", "compile_blocks", "uncompile_blocks",
    "SortBlockConfig", "TeaBlockCacheConfig", "FirstBlockTaylorConfig", "TeaCacheConfig", "DBCacheConfig",
    "BlockDanceConfig", "TaylorSeerConfig", "FORAConfig", "PABConfig", "TGateConfig", "ScheduleConfig", "DeepCacheConfig",
    "MagCacheConfig", "EasyCacheConfig",
    "CheckpointError", "ConfigError", "PPCacheError", "UnsupportedModelError", "__version__",
]
