"""Per-model adapters, chosen by the transformer's structure; an unknown model gets a clear error."""
from ..errors import UnsupportedModelError
from .base import Adapter, BlockIO
from .flux import FluxAdapter
from .sd3 import SD3Adapter
from .unet import UNetAdapter

ADAPTERS = [SD3Adapter, UNetAdapter, FluxAdapter]
SUPPORTED = ("FLUX (ppcache FluxTransformer2DModel, PPDiffusers FLUX), SD3 (PPDiffusers SD3Transformer2DModel), "
             "UNet (PPDiffusers UNet2DConditionModel, DeepCache only)")


def adapter_for(transformer):
    for adapter in ADAPTERS:
        if adapter.matches(transformer):
            return adapter(transformer)
    raise UnsupportedModelError(
        f"ppcache cannot cache a {type(transformer).__name__}; supported model families: {SUPPORTED}")


__all__ = ["Adapter", "BlockIO", "adapter_for", "FluxAdapter", "SD3Adapter", "UNetAdapter", "SUPPORTED"]
