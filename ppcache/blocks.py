"""CachedBlock: the in-place wrapper that replaces a transformer block in its LayerList."""
import paddle.nn as nn


class CachedBlock(nn.Layer):
    """Routes every call of the original block through the cache engine. The original is kept as `block`."""

    def __init__(self, block, index, engine):
        super().__init__()
        self.block = block
        self.index = index
        object.__setattr__(self, "_engine", engine)  # not a sublayer: no parameters, no cycle in state_dict

    def forward(self, *args, **kwargs):
        return self._engine.run_block(self.index, self.block, args, kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_sub_layers"]["block"], name)
