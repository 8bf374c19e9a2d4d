"""TeaBlockCache (PaddleMIX Fast-Diffusers): TeaCache's accumulated, polynomial-rescaled rel-L1 indicator applied
to every block on its own modulated input. A block whose accumulator stays under its threshold adds its
(optionally linearly extrapolated) cached residual instead of running. The optional step gate applies the same
indicator to block 0 over all channels and, below `step_threshold`, skips the whole step by extrapolating the
last block's output with a Taylor ladder in the step index.

Per-block decisions need the block's own input, so this method reads one host value per block (the reference
does the same); the step gate adds one per step.
"""
import dataclasses
from typing import List

from .. import ops
from ..errors import ConfigError
from .base import MethodConfig, Policy, check_window, in_window, polyval

# TeaCache's FLUX rescale polynomial (ali-vilab/TeaCache), highest power first.
TEACACHE_FLUX_POLY = [4.98651651e02, -2.83781631e02, 5.58554382e01, -3.82021401e00, 2.64230861e-01]


@dataclasses.dataclass
class TeaBlockCacheConfig(MethodConfig):
    """TeaBlockCache (plain, or +Taylor with `step_gate`).

    Attributes:
        timestep_start / timestep_end: the caching window [timestep_end, timestep_start] on the 0..1000 scale.
        block_cache_start: first eligible double-stream (FLUX) or joint (SD3) block index within its group.
        single_block_cache_start: first eligible single-stream block index (FLUX).
        block_threshold / single_block_threshold: per-block accumulator thresholds. The FLUX polynomial adds at
            least 0.18 per step, so a threshold tau allows about tau / 0.18 consecutive skips.
        order: 0 reuses the cached residual (the reference; best measured on tiny-flux), 1 extrapolates it
            linearly in the step index.
        rescale_poly: the indicator's rescale polynomial R, highest power first.
        channel_fraction: leading channels of the modulated input compared by the per-block indicator.
        step_gate: also gate whole steps on block 0 (TeaBlockCache+Taylor).
        step_threshold: accumulator threshold of the step gate (`rel_l1_thresh` in PaddleMIX).
        step_order / first_enhance: Taylor order of the final-output ladder and the first step it may be used at.
        forecast_gain: off by default here: the step gate's final-output ladder, updated at every step that ran
            blocks, forecast better unscaled on tiny-flux (SSIM 0.915 against 0.875 at compute 0.31, tuning images).
        num_inference_steps: steps per generation when no pipeline is attached (to force the last step).
        current_timestep_callback: host timestep of the current call when no pipeline is attached.
    """

    method: str = "teablockcache"
    timestep_start: float = 900.0
    timestep_end: float = 100.0
    block_cache_start: int = 1
    single_block_cache_start: int = 1
    block_threshold: float = 0.7
    single_block_threshold: float = 0.7
    order: int = 0
    rescale_poly: List[float] = dataclasses.field(default_factory=lambda: list(TEACACHE_FLUX_POLY))
    channel_fraction: float = 0.125
    step_gate: bool = False
    step_threshold: float = 0.5
    step_order: int = 1
    first_enhance: int = 1
    forecast_gain: bool = False

    def validate(self, where="cache"):
        check_window(where, self.timestep_end, self.timestep_start)
        if not 0 <= self.order <= 3 or not 0 <= self.step_order <= 3:
            raise ConfigError(f"{where}.order and step_order must be between 0 and 3")
        for name in ("block_threshold", "single_block_threshold", "step_threshold"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name} must be >= 0, got {getattr(self, name)}")


class TeaBlockCachePolicy(Policy):
    name = "teablockcache"
    budget_guard = True

    def bind(self, engine):
        super().bind(engine)
        singles = [i for i, b in enumerate(self.blocks) if type(b).__name__.startswith("FluxSingle")]
        first_single = singles[0] if singles else len(self.blocks)
        config = self.config
        self.eligible, self.threshold = [], []
        for index in range(len(self.blocks)):
            single = index >= first_single
            position = index - first_single if single else index
            start = config.single_block_cache_start if single else config.block_cache_start
            self.eligible.append(position >= start)
            self.threshold.append(config.single_block_threshold if single else config.block_threshold)

    def rescaled(self, rel):
        return polyval(self.config.rescale_poly, rel)

    def begin_call(self, call):
        ctx, config = call.ctx, self.config
        call.window = call.over_budget or (in_window(ctx.timestep, config.timestep_end, config.timestep_start)
                                           and not ctx.is_first and not ctx.is_last)
        call.step_skipped = False

    def _indicator(self, call, key, modulated):
        """Adds R(rel-L1) of the modulated input (worst sample) to the accumulator under `key`; returns it."""
        previous = call.state.get(call.key("m_prev", key))
        call.state.set(call.key("m_prev", key), modulated)
        if previous is None or previous.shape != modulated.shape:
            return None
        rel = float(call.read(ops.rel_l1(modulated, previous)).max())  # one host read
        accumulated = call.state.get(call.key("acc", key), 0.0) + self.rescaled(rel)
        call.state.set(call.key("acc", key), accumulated)
        if call.record.indicator is None:  # the step's record: the first accumulator it evaluated
            call.record.indicator = accumulated
        return accumulated

    def _step_gate(self, index, io, call):
        config = self.config
        modulated = self.adapter.modulated_input(self.blocks[0], io)
        accumulated = self._indicator(call, "step", modulated)
        call.record.indicator = accumulated
        if (not call.window or accumulated is None or not self.final_ready(call)
                or call.ctx.step < config.first_enhance or accumulated >= config.step_threshold):
            call.state.set(call.key("acc", "step"), 0.0)
            return None
        call.step_skipped = True
        return self.predict_final(call)

    def decide(self, index, io, call):
        if index == 0 and self.config.step_gate:
            prediction = self._step_gate(index, io, call)
            if prediction is not None:
                return prediction
        block = self.blocks[index]
        modulated = self.adapter.modulated_input(block, io)
        channels = max(1, int(modulated.shape[-1] * self.config.channel_fraction))
        accumulated = self._indicator(call, index, modulated[..., :channels])
        if (call.window and self.eligible[index] and accumulated is not None
                and (accumulated < self.threshold[index] or call.over_budget) and self.has_residual(call, index)):
            return self.predict_residual(call, index)
        call.state.set(call.key("acc", index), 0.0)
        return None

    def after_compute(self, index, io, outputs, call):
        self.record_residual(call, index, io, outputs, self.config.order, allow_higher=True)
        self._record_final(index, outputs, call)

    def after_predict(self, end, outputs, call):
        if not call.step_skipped:
            self._record_final(end, outputs, call)

    def _record_final(self, index, outputs, call):
        """The last block's output at every step that ran the blocks feeds the step gate's ladder."""
        if index != len(self.blocks) - 1 or not self.config.step_gate:
            return
        self.record_final(call, outputs, self.config.step_order, call.ctx.step >= self.config.first_enhance - 1)
