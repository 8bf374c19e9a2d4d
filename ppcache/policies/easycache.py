"""EasyCache (arXiv 2507.02860): runtime-adaptive step reuse with no offline calibration. Between two computed
steps the transformation rate k = mean|dv| / mean|dx| (x: block 0's input, v: the last block's output, main
stream) is stable, so at a later step the output's relative change is estimated as k * mean|x_t - x_t-1| / mean|v|
from the input alone. The estimates accumulate; while their sum stays under `threshold` the step reuses the cached
transformation v - x of the last computed step added to its own input, and a computed step resets the sum.

Per step one host read (the input change, with the rate's statistics of the last computed step riding along). A
batch of several samples skips only when every sample's estimate is under the threshold. With guidance run as
separate calls (Wan2.1), the conditional call decides and the unconditional call of the same step follows, as in
EasyCache's own Wan code: on tiny-wan, deciding each branch alone mixed fresh and cached branches and lost 0.01-0.02
SSIM at the same compute."""
import dataclasses

import numpy as np
import paddle

from .. import ops
from ..errors import ConfigError
from .base import MethodConfig
from .step_residual import StepResidualPolicy, check_step_settings


@dataclasses.dataclass
class EasyCacheConfig(MethodConfig):
    """EasyCache.

    Attributes:
        threshold: skip while the accumulated estimated output change stays below this, in [0, 1] (the paper's
            tau, a few percent; 0 never skips).
        retention_ratio: the first int(retention_ratio x steps) steps are always computed (at least two, to
            measure a first rate), in [0, 1).
        max_skip_steps: skipped steps in a row at most (-1: no cap).
        order: 0 adds the cached transformation (EasyCache); 1 extrapolates it linearly in the step index, 2-3 Taylor.
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "easycache"
    threshold: float = 0.05
    retention_ratio: float = 0.2
    max_skip_steps: int = -1
    order: int = 0

    def validate(self, where="cache"):
        check_step_settings(where, self, "the paper uses a few percent, e.g. 0.05")
        if self.max_skip_steps < 1 and self.max_skip_steps != -1:
            raise ConfigError(f"{where}.max_skip_steps must be >= 1, or -1 for no cap, got {self.max_skip_steps}")


class EasyCachePolicy(StepResidualPolicy):
    name = "easycache"
    follows_first_branch = True

    def observe_step(self, io, call):
        call.state.set(call.key("x_prev"), io.streams[0])

    def decide_step(self, io, call):
        ctx, config, state = call.ctx, self.config, call.state
        x = io.streams[0]
        previous = state.get(call.key("x_prev"))
        self.observe_step(io, call)
        retained = ctx.num_steps is not None and ctx.step < max(2, int(config.retention_ratio * ctx.num_steps))
        if ctx.is_first or retained or previous is None or previous.shape != x.shape or not self.residual_ready(call):
            return None
        change = call.read(ops.abs_means(x, previous)[0])  # the step's one host read: mean|x_t - x_t-1| per sample
        rate = state.get(call.key("rate"))  # host [B], k / mean|v| of the last computed step (after the read)
        if rate is None:
            return None
        accumulated = state.get(call.key("acc"), 0.0) + rate * change
        skipped = state.get(call.key("skipped"), 0)
        call.record.indicator = float(np.max(accumulated))
        capped = config.max_skip_steps != -1 and skipped >= config.max_skip_steps
        if not call.over_budget and (np.max(accumulated) >= config.threshold or capped):
            return None  # computed: step_computed() resets the sum
        state.set(call.key("acc"), accumulated)
        state.set(call.key("skipped"), skipped + 1)
        return self.skip_step(call)

    def step_computed(self, call, step_input, step_output, residual):
        if call.ctx.branch > 0:
            return  # a following branch keeps only its residual (and its x_prev, in observe_step)
        state = call.state
        state.set(call.key("acc"), 0.0)
        state.set(call.key("skipped"), 0)
        state.set(call.key("x_prev"), step_input)
        anchor = state.get(call.key("anchor"))  # (x, v) of the previous computed step
        state.set(call.key("anchor"), (step_input, step_output))
        if anchor is None or anchor[0].shape != step_input.shape:
            return
        output_change, output_norm = ops.abs_means(anchor[1], step_output)  # mean|v - v_prev|, mean|v|
        input_change = ops.abs_means(step_input, anchor[0])[0]
        key = call.key("rate")
        # k / mean|v| = mean|dv| / (mean|dx| mean|v|), read with the next host transfer
        call.collect(paddle.stack([output_change, input_change, output_norm]),
                     lambda host, key=key, state=state: state.set(key, _rate(host)))


def _rate(host):
    """k / mean|v| per sample from the stacked [output change, input change, output norm] ([3 x B] flattened)."""
    output_change, input_change, output_norm = np.asarray(host, np.float64).reshape(3, -1)
    return output_change / np.maximum(input_change * output_norm, 1e-12)
