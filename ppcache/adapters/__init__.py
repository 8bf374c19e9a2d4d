"""Per-model adapters, chosen by the transformer's structure; an unknown model gets a clear error."""
from ..errors import UnsupportedModelError
from .base import Adapter, BlockIO
from .cogvideox import CogVideoXAdapter
from .flux import FluxAdapter
from .hunyuan_video import HunyuanVideoAdapter
from .pixart import PixArtAdapter
from .sd3 import SD3Adapter
from .unet import UNetAdapter
from .wan import WanAdapter

# FLUX matches by structure, so the families whose transformers share its block lists come first.
ADAPTERS = [SD3Adapter, UNetAdapter, HunyuanVideoAdapter, PixArtAdapter, WanAdapter, CogVideoXAdapter, FluxAdapter]
TRANSFORMER_FAMILIES = ("flux", "sd3", "pixart", "wan", "hunyuan_video", "cogvideox")
SUPPORTED = ("FLUX (ppcache FluxTransformer2DModel, PPDiffusers FLUX), SD3 (PPDiffusers SD3Transformer2DModel), "
             "PixArt-α/Σ (PPDiffusers Transformer2DModel), Wan2.1 (WanTransformer3DModel), HunyuanVideo "
             "(HunyuanVideoTransformer3DModel), CogVideoX (CogVideoXTransformer3DModel), "
             "UNet (PPDiffusers UNet2DConditionModel, DeepCache only)")


def adapter_for(transformer):
    for adapter in ADAPTERS:
        if adapter.matches(transformer):
            return adapter(transformer)
    raise UnsupportedModelError(
        f"ppcache cannot cache a {type(transformer).__name__}; supported model families: {SUPPORTED}")


__all__ = ["Adapter", "BlockIO", "adapter_for", "FluxAdapter", "SD3Adapter", "UNetAdapter", "PixArtAdapter", "WanAdapter",
           "HunyuanVideoAdapter", "CogVideoXAdapter", "SUPPORTED", "TRANSFORMER_FAMILIES"]
