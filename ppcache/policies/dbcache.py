"""DBCache (cache-dit) and FBCache (ParaAttention, diffusers): the first Fn blocks always run and their residual
is the indicator; the middle blocks are skipped by adding their cached span residual (optionally predicted by a
Taylor calibrator) when the indicator drifted less than the threshold from its anchor; the last Bn blocks always
run. Guards, in order: warm-up, max cached steps, max consecutive cached steps, threshold (and the engine's
final_steps, common to every method)."""
import dataclasses

from .. import ops
from ..engine import Prediction
from ..errors import ConfigError
from .base import MethodConfig, Policy


@dataclasses.dataclass
class DBCacheConfig(MethodConfig):
    """DBCache; FBCache is Fn=1, Bn=0, no warm-up.

    Attributes:
        Fn_compute_blocks / Bn_compute_blocks: leading / trailing blocks always computed (unified block list).
        residual_diff_threshold: cache when rel-L1(Fn residual, its anchor) is below this (<= 0: never cache).
        max_warmup_steps: steps below this are computed (only every `warmup_interval`-th of them is forced).
        max_cached_steps / max_continuous_cached_steps: caps (-1: none); the continuous cap counts a true run.
        calibrator_order: -1 reuses the cached span residual; k >= 0 predicts it with a Taylor ladder of order k
            (1 = cache-dit's TaylorSeer calibrator).
        first_enhance: the calibrator's derivatives are formed only from step first_enhance - 1 on (the span
            residual's first steps are a transient that reverses direction; cache-dit's calibrator starts at 3).
        downsample_factor: channel stride of the indicator.
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "dbcache"
    Fn_compute_blocks: int = 1
    Bn_compute_blocks: int = 0
    residual_diff_threshold: float = 0.08
    max_warmup_steps: int = 0
    warmup_interval: int = 1
    max_cached_steps: int = -1
    max_continuous_cached_steps: int = -1
    calibrator_order: int = -1
    first_enhance: int = 3
    downsample_factor: int = 1

    def validate(self, where="cache"):
        if self.Fn_compute_blocks < 1:
            raise ConfigError(f"{where}.Fn_compute_blocks must be >= 1 (the indicator needs a block), "
                              f"got {self.Fn_compute_blocks}")
        if self.Bn_compute_blocks < 0 or self.warmup_interval < 1 or self.downsample_factor < 1:
            raise ConfigError(f"{where}: Bn_compute_blocks must be >= 0, warmup_interval and downsample_factor >= 1")
        if self.calibrator_order < -1 or self.calibrator_order > 3:
            raise ConfigError(f"{where}.calibrator_order must be -1 (reuse) or 0..3, got {self.calibrator_order}")


class DBCachePolicy(Policy):
    name = "dbcache"
    budget_guard = True

    def bind(self, engine):
        super().bind(engine)
        config = self.config
        self.first_cached = config.Fn_compute_blocks
        self.last_cached = len(self.blocks) - 1 - config.Bn_compute_blocks
        if self.first_cached > self.last_cached:
            raise ConfigError(f"cache: Fn_compute_blocks + Bn_compute_blocks ({config.Fn_compute_blocks} + "
                              f"{config.Bn_compute_blocks}) leaves no block to cache in a {len(self.blocks)}-block model")

    def begin_call(self, call):
        call.first_input = call.fn_residual = None

    def _indicator(self, residual):
        return residual[..., :: self.config.downsample_factor]

    def _guarded(self, call):
        """True when a guard forces computing this step."""
        config, step = self.config, call.ctx.step
        if step < config.max_warmup_steps and step % config.warmup_interval == 0:
            return True
        if 0 <= config.max_cached_steps <= call.state.get(call.key("cached_steps"), 0):
            return True
        if 0 <= config.max_continuous_cached_steps <= call.state.get(call.key("run"), 0):
            return True
        return config.residual_diff_threshold <= 0

    def decide(self, index, io, call):
        if index != self.first_cached:
            return None
        residual = call.fn_residual = self._indicator(io.streams[0] - call.first_input)
        anchor = call.state.get(call.key("anchor"))
        span = call.state.get(call.key("span", 0))
        if anchor is None or span is None or (self._guarded(call) and not call.over_budget):
            return None
        drift = float(call.read(ops.rel_l1(residual, anchor)).max())  # the step's one host read
        call.record.indicator = drift
        if drift >= self.config.residual_diff_threshold and not call.over_budget:
            return None
        call.state.set(call.key("cached_steps"), call.state.get(call.key("cached_steps"), 0) + 1)
        call.state.set(call.key("run"), call.state.get(call.key("run"), 0) + 1)
        state, position = call.state, call.position

        def produce(streams):
            out = []
            for stream, x in enumerate(streams):
                ladder = state.get(call.key("span", stream))
                out.append(x if x is None or ladder is None else ladder.predict_add(x, position))
            return tuple(out)

        return Prediction(self.last_cached, produce)

    def after_compute(self, index, io, outputs, call):
        if index == 0:
            call.first_input = io.streams[0]  # the leading blocks always run: decide() may not (a forced call)
        if index == self.first_cached:
            anchor = call.fn_residual
            if anchor is None:
                anchor = self._indicator(io.streams[0] - call.first_input)
            call.state.set(call.key("anchor"), anchor)
            call.state.set(call.key("run"), 0)
            call.span_inputs = io.streams
        if index == self.last_cached:
            if len(outputs) != len(call.span_inputs) or outputs[0].shape != call.span_inputs[0].shape:
                self.notice("dbcache: the cached span changes the stream layout of this model, so it is always computed; "
                            "choose Fn_compute_blocks / Bn_compute_blocks so that the span starts and ends in blocks of one kind")
                return
            config = self.config
            order = max(0, config.calibrator_order)
            allow_higher = config.calibrator_order > 0 and call.ctx.step >= config.first_enhance - 1
            for stream, (x_in, x_out) in enumerate(zip(call.span_inputs, outputs)):
                if x_in is not None and x_out is not None:
                    self.update_ladder(call, ("span", stream), order, x_out - x_in, allow_higher)
