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

    def ladder(self, key, order):
        ladder = self.entries.get(key)
        if ladder is None:
            ladder = self.entries[key] = TaylorLadder(order)
        return ladder

    def nbytes(self):
        total = 0
        for value in self.entries.values():
            if isinstance(value, TaylorLadder):
                total += value.nbytes()
            elif isinstance(value, (tuple, list)):
                total += sum(ops.nbytes(v) for v in value if hasattr(v, "element_size"))
            elif hasattr(value, "element_size"):
                total += ops.nbytes(value)
        return total

    def track_peak(self):
        self.peak_bytes = max(self.peak_bytes, self.nbytes())
        return self.peak_bytes
