"""TeaCache (arXiv 2411.19108): the rel-L1 change of block 0's modulated input, rescaled by a polynomial fitted
per model and accumulated; while the sum stays under the threshold the whole transformer is skipped and the
cached residual (last block's output minus block 0's input, image stream) is added back."""
import dataclasses
from typing import List

from .. import ops
from ..errors import ConfigError
from .base import MethodConfig, polyval
from .step_residual import StepResidualPolicy
from .teablockcache import TEACACHE_FLUX_POLY


@dataclasses.dataclass
class TeaCacheConfig(MethodConfig):
    """TeaCache.

    Attributes:
        rel_l1_thresh: accumulator threshold delta (FLUX.1-dev: 0.25 -> ~1.5x, 0.4 -> 1.8x, 0.6 -> 2.0x).
        coefficients: rescale polynomial, highest power first (FLUX default; refit with tools/calibrate_teacache.py).
        order: 0 adds the cached residual (TeaCache); 1 extrapolates it linearly in the step index, 2-3 Taylor.
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "teacache"
    rel_l1_thresh: float = 0.6
    coefficients: List[float] = dataclasses.field(default_factory=lambda: list(TEACACHE_FLUX_POLY))
    order: int = 0

    def validate(self, where="cache"):
        if self.rel_l1_thresh < 0:
            raise ConfigError(f"{where}.rel_l1_thresh must be >= 0, got {self.rel_l1_thresh}")
        if not 0 <= self.order <= 3:
            raise ConfigError(f"{where}.order must be between 0 and 3, got {self.order}")
        if not self.coefficients:
            raise ConfigError(f"{where}.coefficients must list at least one coefficient")


class TeaCachePolicy(StepResidualPolicy):
    name = "teacache"

    def decide_step(self, io, call):
        ctx, config = call.ctx, self.config
        modulated = self.adapter.modulated_input(self.blocks[0], io)
        previous = call.state.get(call.key("m_prev"))
        call.state.set(call.key("m_prev"), modulated)
        last = ctx.is_last and not call.over_budget  # the last step is computed unless the cap is spent
        if ctx.is_first or last or previous is None or previous.shape != modulated.shape:
            call.state.set(call.key("acc"), 0.0)
            return None
        rel = float(call.read(ops.rel_l1(modulated, previous)).max())  # the step's one host read
        accumulated = call.state.get(call.key("acc"), 0.0) + polyval(config.coefficients, rel)
        call.record.indicator = accumulated
        if (accumulated >= config.rel_l1_thresh and not call.over_budget) or not self.residual_ready(call):
            call.state.set(call.key("acc"), 0.0)
            return None
        call.state.set(call.key("acc"), accumulated)
        return self.skip_step(call)
