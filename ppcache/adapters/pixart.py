"""PixArt-α / PixArt-Σ (PPDiffusers' Transformer2DModel with BasicTransformerBlocks): one image stream, the caption
as cross-attention context, adaLN-single modulation (the block's `timestep` argument is the [B, 6 x C] table
offset computed once per call by `adaln_single`)."""
from .base import modulate
from .single_stream import SingleStreamAdapter


class PixArtAdapter(SingleStreamAdapter):
    family = "pixart"
    block_list_names = ("transformer_blocks",)
    temb_argument = "timestep"
    transformer_class = "Transformer2DModel"

    def modulated_input(self, block, io):
        hidden_states = io.streams[0]
        if getattr(block, "use_ada_layer_norm_single", False):
            batch = hidden_states.shape[0]
            shift, scale = (block.scale_shift_table[None] + io.temb.reshape([batch, 6, -1])).chunk(6, axis=1)[:2]
            return modulate(block.norm1(hidden_states), shift, scale)
        if getattr(block, "use_layer_norm", False):
            return block.norm1(hidden_states)
        raise NotImplementedError("this Transformer2DModel's blocks use an adaptive norm other than adaLN-single "
                                  "(PixArt); methods that read the modulated input (teacache, teablockcache) need it")
