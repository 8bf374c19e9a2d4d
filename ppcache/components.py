"""CachedComponent: wraps a sublayer of a block (attention, MLP, output projection) for component-level methods."""
import paddle.nn as nn


class CachedComponent(nn.Layer):
    """Routes calls of one block component through the engine; the original is kept as `component`."""

    def __init__(self, component, block_index, name, engine):
        super().__init__()
        self.component = component
        self.block_index = block_index
        self.name = name
        object.__setattr__(self, "_engine", engine)

    def forward(self, *args, **kwargs):
        return self._engine.run_component(self.block_index, self.name, self.component, args, kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_sub_layers"]["component"], name)
