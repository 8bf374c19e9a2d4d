"""Sequence (context) parallelism: the image tokens split across the ranks of a `paddle.distributed` group.

Each rank holds one contiguous shard of the image tokens and the whole (short) text stream. Attention gathers
the keys and values of every shard (one all-gather of K and V per attention, in rank order, so the key sequence
is the single-process one) and each rank attends its own queries: the same arithmetic as one process. Cache
indicators (`ppcache.ops.rel_l1`, `channel_cosine`, `all_finite`) are all-reduced while a group is active, so every
rank sees the same value and takes the same decision at every step and block; each rank's cache store holds its
own shard.

All-gather rather than ring attention: at FLUX sizes the gathered K/V (2 x tokens x width per block) fits every
card, it is one collective per attention, and Paddle has it on every backend (gloo on CPU, NCCL on GPU).
"""
import contextlib
import contextvars
import os
import time

import paddle

from ..errors import PPCacheError

_active = contextvars.ContextVar("ppcache_sequence_parallel", default=None)


def current():
    """The group of the transformer call running now, or None outside a sequence-parallel call."""
    return _active.get()


def launched_world_size():
    """Processes of this `paddle.distributed.launch` run (1 when not launched)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


class SequenceParallel:
    """`size` ranks sharing the image tokens of one generation; built once per process.

    `paddle.distributed.init_parallel_env()` is called here when the launcher has not been initialised yet."""

    def __init__(self, size):
        import paddle.distributed as dist

        world = launched_world_size()
        if size < 2:
            raise PPCacheError(f"parallel.sequence must be at least 2 to split the tokens, got {size}")
        if world != size:
            raise PPCacheError(
                f"parallel.sequence is {size} but this run has {world} process(es): launch it with "
                f"python -m paddle.distributed.launch --nproc_per_node {size} ...")
        if not dist.is_initialized():
            dist.init_parallel_env()
        self.size, self.rank = dist.get_world_size(), dist.get_rank()
        self._dist = dist
        self.gathers = 0  # attention all-gathers run (K and V count one)
        self.reduces = 0  # indicator all-reduces run
        self.seconds = {"gather": 0.0, "reduce": 0.0}  # wall time inside each kind of collective

    @contextlib.contextmanager
    def active(self):
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def check_tokens(self, tokens):
        if tokens % self.size:
            raise PPCacheError(
                f"sequence parallelism over {self.size} ranks needs the image token count to divide evenly, but it "
                f"is {tokens}: pick a height/width whose token count ({tokens}) is a multiple of {self.size}")

    def shard(self, x, axis=1):
        """This rank's contiguous slice of `x` along `axis`."""
        length = x.shape[axis] // self.size
        return paddle.slice(x, [axis], [self.rank * length], [(self.rank + 1) * length])

    def gather(self, x, axis=1):
        """The shards of every rank, concatenated in rank order along `axis`."""
        parts, start = [], time.perf_counter()
        self._dist.all_gather(parts, x.contiguous() if hasattr(x, "contiguous") else x)
        self.seconds["gather"] += time.perf_counter() - start
        return paddle.concat(parts, axis=axis)

    def gather_tokens(self, x, text_len):
        """[text; this rank's image shard] -> [text; every image shard] along axis 1 (text is replicated)."""
        self.gathers += 1
        if text_len == 0:
            return self.gather(x)
        return paddle.concat([x[:, :text_len], self.gather(x[:, text_len:])], axis=1)

    def mean(self, x):
        """The mean over ranks of `x` (same shape on every rank), in float32."""
        total = x.astype("float32").clone()
        self._all_reduce(total, self._dist.ReduceOp.SUM)
        return total / self.size

    def all_true(self, flag):
        """True on every rank only when `flag` is true on every rank."""
        total = flag.astype("float32").reshape([-1]).clone()
        self._all_reduce(total, self._dist.ReduceOp.MIN)
        return total > 0.5

    def _all_reduce(self, tensor, op):
        self.reduces += 1
        start = time.perf_counter()
        self._dist.all_reduce(tensor, op=op)
        self.seconds["reduce"] += time.perf_counter() - start
