"""Compiled block math: every transformer block's forward under `paddle.jit.to_static`.

The cache engine's wrappers stay eager around the compiled blocks, so the decision and its one host read per step
happen outside the compiled region; a predicted block never enters its program. Compile before or after
`apply_cache` with a block-level method (a method that caches parts of blocks, e.g. PAB or T-GATE, would be traced
into the graph and is refused). Not combined with sequence parallelism (its attention gathers are Python-side).
"""
import paddle

from .adapters import adapter_for
from .blocks import CachedBlock
from .errors import PPCacheError

COMPILED_MARK = "_ppcache_compiled"
STATIC_FORWARD = "_ppcache_static_forward"  # kept across uncompile/compile: its traced programs are reused


def _blocks(target):
    """(transformer, its original blocks, the cache engine whose wrappers hold them or None)."""
    transformer = getattr(target, "transformer", target)
    slots = [block for _, _, block in adapter_for(transformer).block_slots()]
    engine = next((block._engine for block in slots if isinstance(block, CachedBlock)), None)
    return transformer, [block.block if isinstance(block, CachedBlock) else block for block in slots], engine


def is_compiled(block):
    return COMPILED_MARK in block.__dict__


def check_block_level(policy):
    """Compiled blocks take block-level methods only: a component-level one would be traced into the graph."""
    if policy.component_level:
        raise PPCacheError(f"{policy.name} caches parts of blocks, which compiled blocks cannot: drop model.compile "
                           "(or ppcache.uncompile_blocks) or use a block-level method (fbcache, dbcache, teacache, "
                           "sortblock, ...)")


def compile_blocks(target):
    """Compiles the forward of every block of `target` (a pipeline or its transformer); returns how many."""
    transformer, blocks, engine = _blocks(target)
    if getattr(transformer, "sequence_parallel", None) is not None:
        raise PPCacheError("model.compile is not supported with parallel.sequence yet: drop one of them")
    if engine is not None:
        check_block_level(engine.policy)
    for block in blocks:
        if not is_compiled(block):
            if STATIC_FORWARD not in block.__dict__:
                object.__setattr__(block, STATIC_FORWARD, paddle.jit.to_static(block.forward, full_graph=True))
            object.__setattr__(block, "forward", block.__dict__[STATIC_FORWARD])
            object.__setattr__(block, COMPILED_MARK, True)
    return len(blocks)


def uncompile_blocks(target):
    """Back to the eager forward of every block."""
    _, blocks, _ = _blocks(target)
    for block in blocks:
        if is_compiled(block):
            del block.__dict__["forward"]
            del block.__dict__[COMPILED_MARK]
