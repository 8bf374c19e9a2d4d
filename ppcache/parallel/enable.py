"""Switching sequence parallelism on and off for a pipeline's transformer."""
import contextlib

from ..errors import PPCacheError
from .sequence import SequenceParallel

_groups = {}  # one group per size and process: paddle.distributed is initialised once


def _transformer(target):
    return getattr(target, "transformer", target)


def enable_sequence_parallel(target, size):
    """Splits the image tokens of `target` (a pipeline or its transformer) across `size` launched ranks.

    Supported: ppcache's FluxTransformer2DModel (the pipeline `model.pipeline: ppcache` loads). Returns the group.
    """
    from ..models.flux_transformer import FluxTransformer2DModel

    transformer = _transformer(target)
    if not isinstance(transformer, FluxTransformer2DModel):
        raise PPCacheError(
            f"sequence parallelism supports ppcache's FluxTransformer2DModel, not {type(transformer).__name__}: "
            "load a FLUX model with model.pipeline: ppcache, or run without parallel.sequence and without "
            "paddle.distributed.launch")
    if size not in _groups:
        _groups[size] = SequenceParallel(size)
    transformer.sequence_parallel = _groups[size]
    return _groups[size]


def check_sequence_tokens(pipe, height, width):
    """Before any work: the image tokens of a height x width generation must split evenly across the ranks."""
    group = getattr(pipe.transformer, "sequence_parallel", None)
    if group is not None:
        unit = pipe.vae_scale_factor * 2
        group.check_tokens((height // unit) * (width // unit))


def disable_sequence_parallel(target):
    _transformer(target).sequence_parallel = None


@contextlib.contextmanager
def sequence_context(transformer):
    """The transformer's group active for one call (a no-op without sequence parallelism)."""
    group = getattr(transformer, "sequence_parallel", None)
    if group is None:
        yield None
        return
    with group.active():
        yield group
