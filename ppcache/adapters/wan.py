"""Wan2.1 (PPDiffusers' WanTransformer3DModel): text-to-video. The latent video [B, C, F, H, W] is patchified into one
token sequence of frames x patches, so the blocks see one image stream; the text is cross-attention context. Each
block's `temb` is the [B, 6, C] modulation, offset by the block's own scale-shift table."""
import paddle

from .base import modulate
from .single_stream import SingleStreamAdapter


class WanAdapter(SingleStreamAdapter):
    family = "wan"
    block_list_names = ("blocks",)
    feed_forward = "ffn"
    transformer_class = "WanTransformer3DModel"

    def modulated_input(self, block, io):
        hidden_states = io.streams[0]
        shift, scale = (block.scale_shift_table + io.temb.astype(paddle.float32)).chunk(6, axis=1)[:2]
        return modulate(block.norm1(hidden_states.astype(paddle.float32)), shift, scale).cast(hidden_states.dtype)
