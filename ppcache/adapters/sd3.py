"""SD3 (PPDiffusers' SD3Transformer2DModel): joint blocks; the last block returns (None, hidden_states)."""
from .base import Adapter, BlockIO, call_arguments, joint_block_macs


class SD3Adapter(Adapter):
    family = "sd3"
    block_list_names = ("transformer_blocks",)
    timestep_scale = 1.0

    @classmethod
    def matches(cls, transformer):
        return type(transformer).__name__ == "SD3Transformer2DModel" and hasattr(transformer, "transformer_blocks")

    def read_inputs(self, block, args, kwargs):
        bound = call_arguments(block, args, kwargs)
        return BlockIO((bound["hidden_states"], bound["encoder_hidden_states"]), bound["temb"])

    def read_outputs(self, block, output):
        encoder_hidden_states, hidden_states = output
        return (hidden_states, encoder_hidden_states)

    def make_output(self, block, streams):
        return streams[1], streams[0]

    def modulated_input(self, block, io):
        return block.norm1(io.streams[0], emb=io.temb)[0]

    def components(self, block):
        return ("attn", "ff") if getattr(block, "context_pre_only", False) else ("attn", "ff", "ff_context")

    def component_macs(self, block, io):
        return joint_block_macs(io, has_text_mlp=not getattr(block, "context_pre_only", False))
