"""The cache engine: installs CachedBlock wrappers, tracks the step context, asks the policy, records what ran.

Per transformer call: the step context is resolved (see context.py), the policy's `begin_call` plans the step,
then each wrapped block asks `decide`: compute the block, or predict a span of blocks [index, end] from the
cache. Blocks inside a predicted span pass their inputs through; the span's last block returns the prediction.
A prediction that is not finite is detected on device and checked once at the end of the call; the call is then
re-run with every block computed, and the fallback is counted.
"""
import dataclasses
from typing import Callable, Optional

import paddle

from . import ops
from .adapters import adapter_for
from .blocks import CachedBlock
from .components import CachedComponent
from .context import StepContext, StepTracker
from .compiled import check_block_level, is_compiled
from .parallel.enable import sequence_context
from .state import CacheState
from .stats import CallRecord, RunStats


@dataclasses.dataclass
class Prediction:
    """Skip blocks index..end; `produce(input streams of block end)` returns the output streams of block `end`."""

    end: int
    produce: Callable


class CallState:
    """Everything about one transformer call that the policy and engine share.

    Host transfers: a call makes at most one. It is either the policy's decision read (`read`) or, at the end of
    the call, the read of the prediction finiteness flags and `defer`red values. Statistics that are not needed
    at once (`collect`) ride along with whichever transfer comes next, in this call or a later one, and force one
    at the end of a call only when the call made none."""

    def __init__(self, ctx: StepContext, state: CacheState, record: CallRecord, num_blocks: int, position=None,
                 pending=None):
        self.ctx = ctx
        self.state = state
        self.record = record
        self.num_blocks = num_blocks
        self.position = float(ctx.step) if position is None else position  # the ladders' axis (see predictors)
        self.pending = [] if pending is None else pending  # collected values, shared across calls by the engine
        self.synced = False
        self.span: Optional[Prediction] = None
        self.force_compute = False
        self.over_budget = False  # max_compute_fraction is spent: the policy skips wherever it can
        self.finite_flags = []
        self.deferred = []
        self.component_macs = {}

    def defer(self, values, consume):
        """Read `values` (a device tensor) at the end of the call, in the call's single host transfer."""
        self.deferred.append((values, consume))

    def collect(self, values, consume):
        """Read `values` at the next host transfer, wherever it happens; `consume` gets them as host floats."""
        self.pending.append((values, consume))

    def read(self, values):
        """Host values of `values` now (the call's decision read), carrying the collected values along."""
        host = transfer([values] + [v for v, _ in self.pending])
        dispatch(host[1:], self.pending)
        self.synced = True
        return host[0]

    def key(self, *parts):
        """State key scoped to this call's branch."""
        return (self.ctx.branch,) + parts


class CacheEngine:
    def __init__(self, transformer, policy, timestep_callback=None, num_steps=None):
        self.transformer = transformer
        self.adapter = adapter_for(transformer)
        self.policy = policy
        self.state = CacheState()
        self.slots = self.adapter.block_slots()  # (container, key, original block) in execution order
        self.blocks = [slot[2] for slot in self.slots]
        self.component_slots = []  # (block, name, original sublayer)
        self.stats = RunStats(len(self.blocks))
        self.tracker = StepTracker(self._new_generation, timestep_callback, num_steps)
        self.call: Optional[CallState] = None
        self.pending = []  # values collected for the next host transfer (CallState.collect)
        self._original_forward = None
        self._checked_generation = 0
        policy.bind(self)
        self.compute_cap = getattr(policy.config, "max_compute_fraction", None)
        if self.compute_cap is not None and not policy.budget_guard:
            policy.notice(f"{policy.name}: max_compute_fraction has no effect: this method follows a fixed schedule "
                          "(the cap applies to dbcache, firstblock_taylor, teacache, teablockcache and sortblock)")

    # ---- install / remove ------------------------------------------------------------------------------------
    def install(self):
        if any(is_compiled(block) for _, _, block in self.slots):
            check_block_level(self.policy)
        for index, (container, key, block) in enumerate(self.slots):
            _put(container, key, CachedBlock(block, index, self))
            if self.policy.component_level:
                for name in self.adapter.components(block):
                    original = getattr(block, name)
                    self.component_slots.append((block, name, original))
                    setattr(block, name, CachedComponent(original, index, name, self))
        self._original_forward = self.transformer.forward
        object.__setattr__(self.transformer, "forward", self._forward)
        self.transformer._ppcache_engine = self
        return self

    def remove(self):
        for container, key, block in self.slots:
            _put(container, key, block)
        for block, name, original in self.component_slots:
            setattr(block, name, original)
        self.component_slots = []
        if "forward" in self.transformer.__dict__:
            del self.transformer.__dict__["forward"]
        self.transformer.__dict__.pop("_ppcache_engine", None)
        self.state.reset()

    # ---- generation context ----------------------------------------------------------------------------------
    def _new_generation(self):
        self._check_generation()
        self.pending.clear()  # statistics of the last generation's state
        self.state.reset()
        self.stats.new_generation()
        self.policy.reset()

    # ---- per call --------------------------------------------------------------------------------------------
    def _forward(self, *args, **kwargs):
        with sequence_context(self.transformer):  # indicators all-reduced across ranks (ppcache.parallel)
            return self._cached_forward(*args, **kwargs)

    def _cached_forward(self, *args, **kwargs):
        ctx = self.tracker.next_call(lambda: self.adapter.timestep_of_call(args, kwargs))
        self.adapter.begin_call(args, kwargs)
        self.call = self._call_state(ctx, CallRecord(ctx.step, ctx.branch, ctx.timestep), self._over_budget(ctx))
        try:
            self.policy.begin_call(self.call)
            output = self._original_forward(*args, **kwargs)
            self.policy.end_call(self.call)
            if not self._read_back(self.call):
                self.call = self._call_state(ctx, CallRecord(ctx.step, ctx.branch, ctx.timestep, fallback=True))
                self.call.force_compute = True
                self.policy.begin_call(self.call)
                output = self._original_forward(*args, **kwargs)
                self.policy.end_call(self.call)
                self._read_back(self.call)
            self.stats.add(self.call.record, self.state.nbytes())
            if ctx.is_last:
                self._check_generation()
            return output
        finally:
            self.call = None

    def _call_state(self, ctx, record, over_budget=False):
        call = CallState(ctx, self.state, record, len(self.blocks), self.policy.position(ctx), self.pending)
        call.over_budget = record.over_budget = over_budget
        call.force_compute = self.policy.forced(ctx) and not over_budget  # a spent cap outranks final_steps
        return call

    def _over_budget(self, ctx):
        """Whether computing this call in full would take the generation past `max_compute_fraction` of its full
        cost: the MACs run so far plus one call's, against the cap x one call's MACs x calls per step x steps."""
        calls = self.stats.calls  # this generation's calls so far
        if self.compute_cap is None or not self.policy.budget_guard or not calls:
            return False
        if ctx.num_steps is None:
            self.policy.notice(f"{self.policy.name}: max_compute_fraction needs the generation's step count: run "
                               "through a pipeline, or set num_inference_steps")
            return False
        per_call = calls[-1].macs_full
        budget = self.compute_cap * per_call * (1 + max(c.branch for c in calls)) * ctx.num_steps
        return sum(c.macs_run for c in calls) + per_call > budget

    @staticmethod
    def _read_back(call):
        """The call's end-of-call host transfer: the finiteness of every prediction plus the policy's deferred
        values, and the collected values if the call made no transfer yet. Returns False (deferred values
        dropped) when a prediction was not finite."""
        pending = call.pending if not call.synced else []
        if not call.finite_flags and not call.deferred and not pending:
            return True
        parts = [ops.all_finite(call.finite_flags)] + [values for values, _ in call.deferred]
        host = transfer(parts + [values for values, _ in pending])
        dispatch(host[1 + len(call.deferred):], pending)
        if host[0][0] < 0.5:
            return False
        for values, (_, consume) in zip(host[1:], call.deferred):
            consume(values)
        return True

    def run_block(self, index, block, args, kwargs):
        call = self.call
        if call is None:  # a block called outside the transformer's forward
            return block(*args, **kwargs)
        io = self.adapter.read_inputs(block, args, kwargs)
        call.component_macs = self.adapter.component_macs(block, io)
        macs = sum(call.component_macs.values())
        call.record.macs_full += macs
        if call.span is not None:
            return self._inside_span(index, block, io, call)
        action = None if call.force_compute else self.policy.decide(index, io, call)
        if action is None:
            output = block(*args, **kwargs)
            call.record.computed.append(index)
            call.record.macs_run += macs
            self.policy.after_compute(index, io, self.adapter.read_outputs(block, output), call)
            return output
        call.span = action
        return self._inside_span(index, block, io, call)

    def run_component(self, index, name, component, args, kwargs):
        call = self.call
        if call is None or call.force_compute:
            return component(*args, **kwargs)
        produce = self.policy.component_decide(index, name, call)
        if produce is None:
            output = component(*args, **kwargs)
            self.policy.after_component(index, name, output, call)
            return output
        call.record.macs_run -= call.component_macs.get(name, 0)
        call.record.components_predicted += 1
        output = produce()
        call.finite_flags.extend(o for o in (output if isinstance(output, tuple) else (output,)) if o is not None)
        return output

    def _inside_span(self, index, block, io, call):
        call.record.predicted.append(index)
        span = call.span
        if index < span.end:
            return self.adapter.pass_through(block, io)
        # The span's inputs reach its last block unchanged (up to the model's own glue between block lists).
        streams = span.produce(io.streams)
        call.span = None
        call.finite_flags.extend(s for s in streams if s is not None)
        self.policy.after_predict(index, streams, call)
        return self.adapter.make_output(block, streams)

    # ---- reporting -------------------------------------------------------------------------------------------
    def _check_generation(self):
        """A generation of 3 or more steps that predicted nothing and never evaluated a cache decision gets a
        notice: the method had nothing to cache on this model or with these settings (no silent no-op)."""
        calls = self.stats.calls
        if (not self.policy.decides or self._checked_generation == self.stats.generations
                or len({c.step for c in calls}) < 3):
            return
        self._checked_generation = self.stats.generations
        if any(c.predicted or c.components_predicted or c.indicator is not None for c in calls):
            return
        self.policy.notice(f"{self.policy.name}: a {len({c.step for c in calls})}-step generation computed every "
                           "block without evaluating a cache decision once; check the method's window, warm-up and "
                           "block ranges against this model")

    def summary(self):
        summary = self.stats.summary()
        summary["notices"] = list(self.policy.notices)
        summary["method"] = self.policy.name
        summary["model_family"] = self.adapter.family
        summary["num_blocks"] = len(self.blocks)
        group = getattr(self.transformer, "sequence_parallel", None)
        if group is not None:  # cache_bytes is this rank's store: its shard of the image tokens
            summary["sequence_parallel"] = {"rank": group.rank, "ranks": group.size,
                                            "cache_bytes_per_rank": summary["cache_bytes"]}
        return summary


def transfer(tensors):
    """Host float32 arrays of device tensors, in one device-to-host copy."""
    flat = [t.astype("float32").reshape([-1]) for t in tensors]
    host = paddle.concat(flat).numpy() if len(flat) > 1 else flat[0].numpy()
    sizes = [int(t.shape[0]) for t in flat]
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    return [host[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def dispatch(values, pending):
    """Hands collected values to their consumers and empties the queue."""
    for host, (_, consume) in zip(values, pending):
        consume(host)
    pending.clear()


def _put(container, key, layer):
    """Places `layer` at a LayerList position (int key) or an attribute (str key)."""
    if isinstance(key, int):
        container[key] = layer
    else:
        setattr(container, key, layer)
