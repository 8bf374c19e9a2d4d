"""CogVideoX (PPDiffusers' CogVideoXTransformer3DModel): expert blocks over the text and video tokens, taking and
returning (hidden_states, encoder_hidden_states), the video stream first. Attention and the MLP run on the
concatenated [text; video] sequence, split back inside the block."""
from .base import Adapter, attention_width, layer_macs
from .paired_streams import PairedStreamsIO


class CogVideoXAdapter(PairedStreamsIO, Adapter):
    family = "cogvideox"
    block_list_names = ("transformer_blocks",)

    @classmethod
    def matches(cls, transformer):
        return type(transformer).__name__.startswith("CogVideoXTransformer3D") and hasattr(transformer,
                                                                                          "transformer_blocks")

    def modulated_input(self, block, io):
        return block.norm1(io.streams[0], io.streams[1], io.temb)[0]

    def components(self, block):
        return ("attn1", "ff")

    def component_macs(self, block, io):
        batch, image_tokens, _ = io.streams[0].shape
        tokens = image_tokens + io.streams[1].shape[1]
        return {"attn1": layer_macs(block.attn1, batch, tokens, tokens, attention_width(block.attn1)),
                "ff": layer_macs(block.ff, batch, tokens)}
