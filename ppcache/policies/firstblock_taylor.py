"""FirstBlock-Taylor (Confidence-Gated Taylor, arXiv 2508.02240).

Block 0 runs every step. Its output is compared with its own Taylor forecast (gate "forecast_error", the
published method) or its residual with the residual at the last computed step (gate "residual_drift", the
PaddleMIX example). Below the threshold, blocks 1..end are skipped and the last block's output is extrapolated
with a Taylor ladder in the step index. The first and last steps and warm-up steps are always computed.
"""
import dataclasses

from .. import ops
from ..errors import ConfigError
from .base import MethodConfig, Policy


@dataclasses.dataclass
class FirstBlockTaylorConfig(MethodConfig):
    """FirstBlock-Taylor.

    Attributes:
        threshold: skip the rest of the step when the gate value is below this. Useful ranges: 0.05-0.3 for
            "forecast_error", 0.03-0.18 for "residual_drift".
        gate: "forecast_error" (rel-L1 of block 0's output against its forecast) or "residual_drift" (rel-L1 of
            block 0's residual against its value at the last computed step).
        order: Taylor order of both ladders (1 = linear).
        first_enhance: higher ladder factors are formed only from step first_enhance - 1 on.
        warmup_steps: steps 0..warmup_steps-1 are always computed.
        max_consecutive: at most this many skipped steps in a row (-1: no cap).
        num_inference_steps: steps per generation when no pipeline is attached (needed to force the last step).
        current_timestep_callback: host timestep of the current call when no pipeline is attached.
    """

    method: str = "firstblock_taylor"
    threshold: float = 0.15
    gate: str = "forecast_error"
    order: int = 1
    first_enhance: int = 3
    warmup_steps: int = 3
    max_consecutive: int = -1

    def validate(self, where="cache"):
        if self.gate not in ("forecast_error", "residual_drift"):
            raise ConfigError(f"{where}.gate: {self.gate!r} is not allowed; use one of forecast_error, residual_drift")
        if self.threshold < 0:
            raise ConfigError(f"{where}.threshold must be >= 0, got {self.threshold}")
        if not 0 <= self.order <= 3:
            raise ConfigError(f"{where}.order must be between 0 and 3, got {self.order}")


class FirstBlockTaylorPolicy(Policy):
    name = "firstblock_taylor"
    budget_guard = True

    def begin_call(self, call):
        ctx, config = call.ctx, self.config
        run = call.state.get(call.key("run"), 0)
        call.forced = not call.over_budget and (ctx.step == 0 or ctx.is_last or ctx.step < config.warmup_steps
                                                or (config.max_consecutive >= 0 and run >= config.max_consecutive))
        call.first_output = None

    def after_compute(self, index, io, outputs, call):
        last = len(self.blocks) - 1
        if index == 0:
            call.first_output = outputs[0]
            call.first_residual = outputs[0] - io.streams[0]
        if index == last:
            self._update_ladders(call, outputs)

    def _update_ladders(self, call, outputs):
        step, config = call.ctx.step, self.config
        allow_higher = step >= config.first_enhance - 1
        self.update_ladder(call, ("first",), config.order, call.first_output, allow_higher)
        self.record_final(call, outputs, config.order, allow_higher)
        call.state.set(call.key("anchor_residual"), call.first_residual)
        call.state.set(call.key("run"), 0)

    def gate_value(self, call):
        """Per-sample gate values on device, or None when no forecast exists yet."""
        first = call.state.get(call.key("first"))
        if first is None or not first.ready:
            return None
        if self.config.gate == "forecast_error":
            return ops.rel_l1(first.predict(call.position), call.first_output)
        return ops.rel_l1(call.first_residual, call.state.get(call.key("anchor_residual")))

    def decide(self, index, io, call):
        if index != 1 or call.forced:
            return None
        value = self.gate_value(call)
        if value is None:
            return None
        worst = float(call.read(value).max())  # the step's one host sync: every sample must agree to skip
        call.record.indicator = worst
        if worst >= self.config.threshold and not call.over_budget:
            return None
        call.state.set(call.key("run"), call.state.get(call.key("run"), 0) + 1)
        return self.predict_final(call)
