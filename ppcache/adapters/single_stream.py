"""Blocks with one updated stream that read the text as cross-attention context (PixArt, Wan2.1): the block takes
`hidden_states` (+ `encoder_hidden_states` as context) and returns the new `hidden_states` alone."""
from .base import Adapter, BlockIO, attention_width, call_arguments, layer_macs


class SingleStreamAdapter(Adapter):
    temb_argument = "temb"  # the block argument that carries the (per-block modulation) time embedding
    self_attention, cross_attention, feed_forward = "attn1", "attn2", "ff"
    transformer_class = None  # the PPDiffusers model class name this adapter caches

    @classmethod
    def matches(cls, transformer):
        return type(transformer).__name__ == cls.transformer_class and hasattr(transformer, cls.block_list_names[0])

    def read_inputs(self, block, args, kwargs):
        bound = call_arguments(block, args, kwargs)
        io = BlockIO((bound["hidden_states"],), bound.get(self.temb_argument))
        self.context_tokens = _tokens(bound.get("encoder_hidden_states"))
        return io

    def read_outputs(self, block, output):
        return (output[0] if isinstance(output, (tuple, list)) else output,)

    def make_output(self, block, streams):
        return streams[0]

    def components(self, block):
        return tuple(name for name in (self.self_attention, self.cross_attention, self.feed_forward)
                     if getattr(block, name, None) is not None)

    def component_macs(self, block, io):
        batch, tokens, _ = io.streams[0].shape
        macs = {}
        for name in self.components(block):
            layer = getattr(block, name)
            if name == self.feed_forward:
                macs[name] = layer_macs(layer, batch, tokens)
            else:
                context = self.context_tokens if name == self.cross_attention else None
                macs[name] = layer_macs(layer, batch, tokens, context or tokens, attention_width(layer))
        return macs


def _tokens(tensor):
    return None if tensor is None else int(tensor.shape[1])
