"""FLUX transformers: ppcache's own, whose blocks all take (hidden_states, encoder_hidden_states) and return
(encoder_hidden_states, hidden_states), and PPDiffusers' (from the PaddleMIX source tree), whose single blocks take
and return the concatenated [text; image] stream. The adapter splits that stream into image and text views, so
policies see (image, text) streams in both; the text length comes from the transformer call's
`encoder_hidden_states`."""
import paddle

from .base import Adapter, BlockIO, call_arguments, joint_block_macs, parameter_names


def _single_is_concatenated(block):
    return "encoder_hidden_states" not in parameter_names(type(block))


class FluxAdapter(Adapter):
    family = "flux"
    block_list_names = ("transformer_blocks", "single_transformer_blocks")
    timestep_scale = 1000.0  # FluxPipeline passes t / 1000

    def __init__(self, transformer):
        super().__init__(transformer)
        self.text_tokens = None

    @classmethod
    def matches(cls, transformer):
        return hasattr(transformer, "transformer_blocks") and hasattr(transformer, "single_transformer_blocks")

    def is_single(self, block):
        return hasattr(block, "proj_mlp")

    def _is_joint(self, block):
        return self.is_single(block) and _single_is_concatenated(block)

    def begin_call(self, args, kwargs):
        text = call_arguments(self.transformer, args, kwargs).get("encoder_hidden_states")
        self.text_tokens = None if text is None else text.shape[1]

    def _split(self, joint):
        """(image, text) views of a [text; image] tensor."""
        if self.text_tokens is None:
            raise RuntimeError("a concatenated FLUX single block ran outside a transformer call: its text length "
                               "is unknown")
        return joint[:, self.text_tokens:], joint[:, :self.text_tokens]

    def read_inputs(self, block, args, kwargs):
        bound = call_arguments(block, args, kwargs)
        if self._is_joint(block):
            joint = bound["hidden_states"]
            return BlockIO(self._split(joint), bound["temb"], joint)
        return BlockIO((bound["hidden_states"], bound["encoder_hidden_states"]), bound["temb"])

    def read_outputs(self, block, output):
        if not isinstance(output, (tuple, list)):
            return self._split(output)
        encoder_hidden_states, hidden_states = output
        return (hidden_states, encoder_hidden_states)

    def make_output(self, block, streams):
        if self._is_joint(block):
            return paddle.concat([streams[1], streams[0]], axis=1)
        return streams[1], streams[0]

    def pass_through(self, block, io):
        return io.joint if io.joint is not None else self.make_output(block, io.streams)

    def modulated_input(self, block, io):
        if self.is_single(block):
            joint = io.joint if io.joint is not None else paddle.concat([io.streams[1], io.streams[0]], 1)
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
