"""Whole-step skipping, shared by TeaCache, MagCache and EasyCache: a skipped step runs no block, and its image
stream gets the cached residual of the whole block stack (the last block's main output minus block 0's input)
added back, extrapolated by a Taylor ladder of the method's `order` (0: the residual as it was)."""
from ..engine import Prediction
from ..errors import ConfigError
from .base import Policy


def check_step_settings(where, config, threshold_hint):
    """The settings MagCache and EasyCache share: a threshold in [0, 1], a retained fraction in [0, 1), an order."""
    if not 0 <= config.threshold <= 1:
        raise ConfigError(f"{where}.threshold must be between 0 and 1 ({threshold_hint}), got {config.threshold}")
    if not 0 <= config.retention_ratio < 1:
        raise ConfigError(f"{where}.retention_ratio must be in [0, 1), got {config.retention_ratio}")
    if not 0 <= config.order <= 3:
        raise ConfigError(f"{where}.order must be between 0 and 3, got {config.order}")


class StepResidualPolicy(Policy):
    """Subclasses decide a step in `decide_step` (None: compute it, else `self.skip_step(call)`); `step_computed`
    hears of every step that ran in full (decided or forced).

    With `follows_first_branch`, the first guidance branch of a step (the conditional call) decides and the other
    branches of that step follow it: the cond and uncond predictions of a guidance step are then both fresh or both
    cached, never mixed (a later branch still computes when it has no residual yet); `observe_step` keeps a following
    branch's own bookkeeping."""

    budget_guard = True
    follows_first_branch = False

    def decide(self, index, io, call):
        if index != 0:
            return None
        if not self.follows_first_branch:
            return self.decide_step(io, call)
        if call.ctx.branch == 0:
            prediction = self.decide_step(io, call)
            call.state.set(("first_branch_skipped",), (call.ctx.generation, call.ctx.step, prediction is not None))
            return prediction
        self.observe_step(io, call)
        skipped = call.state.get(("first_branch_skipped",)) == (call.ctx.generation, call.ctx.step, True)
        return self.skip_step(call) if (skipped or call.over_budget) and self.residual_ready(call) else None

    def decide_step(self, io, call):
        """None to compute this step (block 0's io), or a skip_step() prediction."""
        return None

    def observe_step(self, io, call):
        """A following branch's step, decided by the first branch (block 0's io)."""

    def residual_ready(self, call):
        residual = call.state.get(call.key("residual"))
        return residual is not None and residual.ready

    def skip_step(self, call, scale=None):
        """Skips blocks 0..last: the main stream plus the cached residual (times `scale`, a host float, if given);
        the other streams (discarded after the last block) pass on."""
        residual, arity, position = call.state.get(call.key("residual")), call.state.get(call.key("arity")), call.position

        def produce(streams):
            if scale is None:
                return (residual.predict_add(streams[0], position),) + tuple(streams[1:arity])
            return (streams[0] + residual.predict(position) * scale,) + tuple(streams[1:arity])

        return Prediction(len(self.blocks) - 1, produce)

    def after_compute(self, index, io, outputs, call):
        if index == 0:
            call.span_input = io.streams[0]  # here, not in decide(): a forced call computes without deciding
        if index != len(self.blocks) - 1:
            return
        if outputs[0].shape != call.span_input.shape:
            self.notice(f"{self.name}: the last block's main stream is not shaped like block 0's input in this model, "
                        "so no residual can be cached and every step is computed")
            return
        residual = outputs[0] - call.span_input
        self.update_ladder(call, ("residual",), getattr(self.config, "order", 0), residual)
        call.state.set(call.key("arity"), len(outputs))
        self.step_computed(call, call.span_input, outputs[0], residual)

    def step_computed(self, call, step_input, step_output, residual):
        """A step ran every block: its block-0 input, last-block output and their difference (main stream)."""
