"""CacheState: the tensor store shared by the cached blocks of one transformer, keyed by branch first."""
from .predictors import TaylorLadder
from . import ops


class CacheState:
    """Per generation: tensors, Taylor ladders and small host-side records, keyed by tuples whose first element
    is the guidance branch. `reset()` drops everything (called at every new generation)."""

    def __init__(self):
        self.entries = {}
        self.peak_bytes = 0

    def reset(self):
        self.entries.clear()

    def get(self, key, default=None):
        return self.entries.get(key, default)

    def set(self, key, value):
        self.entries[key] = value

    def ladder(self, key, order, gain="fixed"):
        ladder = self.entries.get(key)
        if ladder is None:
            ladder = self.entries[key] = TaylorLadder(order, gain)
        return ladder

    def nbytes(self):
        return sum(_nbytes(value) for value in self.entries.values())

    def track_peak(self):
        self.peak_bytes = max(self.peak_bytes, self.nbytes())
        return self.peak_bytes


def _nbytes(value):
    """Bytes held by tensors, ladders and tuples/lists of them; host values count nothing."""
    if isinstance(value, TaylorLadder):
        return value.nbytes()
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    if hasattr(value, "element_size"):
        return ops.nbytes(value)
    return 0
