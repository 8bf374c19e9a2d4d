"""Several devices: sequence-parallel inference (`sequence.py`) and its switch on a transformer (`enable.py`)."""
from .enable import disable_sequence_parallel, enable_sequence_parallel
from .sequence import SequenceParallel, current

__all__ = ["SequenceParallel", "current", "enable_sequence_parallel", "disable_sequence_parallel"]
