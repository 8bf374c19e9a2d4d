"""FLUX transformers: ppcache's own, and the PPDiffusers-from-source FLUX whose single blocks take the
concatenated [text; image] stream and return one tensor."""
from .base import Adapter, BlockIO, call_arguments, joint_block_macs, parameter_names


def _single_is_concatenated(block):
    return "encoder_hidden_states" not in parameter_names(type(block))


class FluxAdapter(Adapter):
    family = "flux"
    block_list_names = ("transformer_blocks", "single_transformer_blocks")
    timestep_scale = 1000.0  # FluxPipeline passes t / 1000

    @classmethod
    def matches(cls, transformer):
        return hasattr(transformer, "transformer_blocks") and hasattr(transformer, "single_transformer_blocks")

    def is_single(self, block):
        return hasattr(block, "proj_mlp")

    def read_inputs(self, block, args, kwargs):
        bound = call_arguments(block, args, kwargs)
        if self.is_single(block) and _single_is_concatenated(block):
            return BlockIO((bound["hidden_states"],), bound["temb"])
        return BlockIO((bound["hidden_states"], bound["encoder_hidden_states"]), bound["temb"])

    def read_outputs(self, block, output):
        if not isinstance(output, (tuple, list)):
            return (output,)
        encoder_hidden_states, hidden_states = output
        return (hidden_states, encoder_hidden_states)

    def make_output(self, block, streams):
        if len(streams) == 1:
            return streams[0]
        return streams[1], streams[0]

    def modulated_input(self, block, io):
        import paddle

        if self.is_single(block):
            joint = io.streams[0] if len(io.streams) == 1 else paddle.concat([io.streams[1], io.streams[0]], 1)
            return block.norm(joint, emb=io.temb)[0]
        return block.norm1(io.streams[0], emb=io.temb)[0]

    def components(self, block):
        return ("attn", "proj_mlp", "proj_out") if self.is_single(block) else ("attn", "ff", "ff_context")

    def component_macs(self, block, io):
        if not self.is_single(block):
            return joint_block_macs(io)
        shapes = [s.shape for s in io.streams if s is not None]
        batch, dim = shapes[0][0], shapes[0][-1]
        tokens = sum(shape[1] for shape in shapes)
        return {"attn": batch * (3 * tokens * dim * dim + 2 * tokens * tokens * dim),
                "proj_mlp": batch * 4 * tokens * dim * dim, "proj_out": batch * 5 * tokens * dim * dim}
