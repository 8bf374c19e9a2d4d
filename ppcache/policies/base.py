"""Policy: the "when" half of a method. Shared helpers for windows, residual ladders and predictions."""
import dataclasses
import warnings
from typing import Callable, Optional

import numpy as np

from ..adapters import TRANSFORMER_FAMILIES
from ..engine import Prediction


FORECAST_AXES = ("step", "timestep")


@dataclasses.dataclass
class MethodConfig:
    """Fields every method accepts.

    For a transformer driven without an attached pipeline: `num_inference_steps` (steps per generation, e.g. to
    force the last step) and `current_timestep_callback` (returns the host timestep of the current call on the
    0..1000 scale, e.g. `lambda: pipe._current_timestep`).

    `final_steps`: the last final_steps steps of a generation are computed in full, whatever the method decides
        (skipping the last step costs the most detail; 0 leaves every step to the method). Needs the step count:
        an attached pipeline, or num_inference_steps.

    For methods that predict skipped values with Taylor ladders (ppcache.predictors):
    `forecast_gain`: True fits each ladder's gain on its own past forecasts (0..1, see predictors); False is the
        published fixed Taylor expansion (gain 1).
    `forecast_axis`: "step" extrapolates in the step index, "timestep" in the sampler's own time variable (the
        timestep, 1000 x sigma on flow-matching schedules), which differs where the schedule is shifted.

    `max_compute_fraction`: a hard cap for dynamic methods (a latency bound): once computing a call in full would
    take the generation past this fraction of its full block cost, the method skips wherever it has something
    cached, whatever its own gate says (summary()["budget_forced_steps"] counts those calls). None: no cap.
    """

    num_inference_steps: Optional[int] = None
    current_timestep_callback: Optional[Callable] = None
    final_steps: int = 0
    forecast_gain: bool = True
    forecast_axis: str = "step"
    max_compute_fraction: Optional[float] = None

    def __post_init__(self):
        from ..errors import ConfigError

        if self.forecast_axis not in FORECAST_AXES:
            raise ConfigError(f"cache.forecast_axis: {self.forecast_axis!r} is not allowed; use one of "
                              f"{', '.join(FORECAST_AXES)}")
        if self.final_steps < 0:
            raise ConfigError(f"cache.final_steps must be >= 0, got {self.final_steps}")
        if self.max_compute_fraction is not None and not 0 < self.max_compute_fraction <= 1:
            raise ConfigError(f"cache.max_compute_fraction must be in (0, 1] (or null for no cap), "
                              f"got {self.max_compute_fraction}")


def check_window(where, timestep_end, timestep_start):
    """The window is [timestep_end, timestep_start] on the 0..1000 scale; an inverted one is an error."""
    from ..errors import ConfigError

    if timestep_end > timestep_start:
        raise ConfigError(f"{where}: timestep_end ({timestep_end}) must not exceed timestep_start "
                          f"({timestep_start}); the window is [timestep_end, timestep_start]")


def in_window(t, t_low, t_high):
    """Inclusive timestep window on the 0..1000 scale; an unknown t is outside."""
    return t is not None and t_low <= t <= t_high


def polyval(coefficients, x):
    """Polynomial with coefficients highest power first (numpy.polyval convention)."""
    return float(np.polyval(coefficients, x))


class Policy:
    name = "base"
    component_level = False  # True: the engine also wraps block components (attention, MLPs)
    budget_guard = False  # True: the gate skips where it can when `call.over_budget` (max_compute_fraction)
    supported_families = TRANSFORMER_FAMILIES  # adapter families this method can cache
    decides = True  # False: a calibration recorder, which computes everything by design (no no-op notice)

    def __init__(self, config):
        self.config = config
        self.engine = None
        self.notices = []  # one line each: what this method could not do on this model (summary()["notices"])

    def notice(self, message):
        """Warns once and records `message` for summary(): a method never degrades to computing everything quietly."""
        if message not in self.notices:
            self.notices.append(message)
            warnings.warn(message, stacklevel=3)

    def bind(self, engine):
        if engine.adapter.family not in self.supported_families:
            from ..errors import UnsupportedModelError

            raise UnsupportedModelError(
                f"method {self.name!r} cannot cache a {type(engine.transformer).__name__} (family "
                f"{engine.adapter.family!r}); it supports: {', '.join(self.supported_families)}"
                + ("; for UNet pipelines use method: deepcache" if engine.adapter.family == "unet" else ""))
        self.engine = engine
        self.adapter = engine.adapter
        self.blocks = engine.blocks

    # hooks ------------------------------------------------------------------------------------------------
    def reset(self):
        """A new generation starts (state is already empty)."""

    def begin_call(self, call):
        """Plan the step; called before the first block."""

    def decide(self, index, io, call):
        """None to compute block `index`, or a Prediction for blocks index..end."""
        return None

    def after_compute(self, index, io, outputs, call):
        """Block `index` was computed; `outputs` are its output streams."""

    def component_decide(self, index, name, call):
        """None to compute component `name` of block `index`, or a callable returning its output."""
        return None

    def after_component(self, index, name, output, call):
        """Component `name` of block `index` was computed."""

    def after_predict(self, end, outputs, call):
        """A predicted span ended at block `end` with these output streams."""

    def end_call(self, call):
        """The transformer call finished."""

    def forced(self, ctx):
        """True for a step the method must compute in full: one of the generation's `final_steps`."""
        final = getattr(self.config, "final_steps", 0)
        return bool(final) and ctx.num_steps is not None and ctx.step >= ctx.num_steps - final

    # ladders ----------------------------------------------------------------------------------------------
    def position(self, ctx):
        """Where a step sits on the ladders' axis (`forecast_axis`): the step index, or the timestep (falling
        back to the step index when the call's timestep is unknown)."""
        if getattr(self.config, "forecast_axis", "step") == "timestep" and ctx.timestep is not None:
            return float(ctx.timestep)
        return float(ctx.step)

    def ladder(self, call, key, order):
        """The ladder under `key` (scoped to the call's branch), created with the method's gain setting."""
        gain = "adaptive" if getattr(self.config, "forecast_gain", False) else "fixed"
        return call.state.ladder(call.key(*key), order, gain)

    def update_ladder(self, call, key, order, value, allow_higher=True):
        self.ladder(call, key, order).update(value, call.position, allow_higher, call.collect)

    # residual helpers -------------------------------------------------------------------------------------
    def record_residual(self, call, index, io, outputs, order, allow_higher, group="block"):
        """Updates the per-stream residual ladders of block `index` (streams with no output are skipped);
        returns the residuals (None where skipped)."""
        residuals = []
        for stream, (x_in, x_out) in enumerate(zip(io.streams, outputs)):
            if x_in is None or x_out is None:
                residuals.append(None)
                continue
            residual = x_out - x_in
            self.update_ladder(call, (group, index, stream), order, residual, allow_higher)
            residuals.append(residual)
        return residuals

    def has_residual(self, call, index, group="block"):
        ladder = call.state.get(call.key(group, index, 0))
        return ladder is not None and ladder.ready

    def predict_residual(self, call, index, group="block", known=None):
        """Prediction for block `index` alone: each stream plus its predicted residual. `known` maps stream
        numbers to residual predictions the caller already computed."""
        position = call.position
        state = call.state
        known = known or {}

        def produce(streams):
            out = []
            for stream, x in enumerate(streams):
                ladder = state.get(call.key(group, index, stream))
                if x is None or ladder is None:
                    out.append(x)
                elif stream in known:
                    out.append(x + known[stream])
                else:
                    out.append(ladder.predict_add(x, position))
            return tuple(out)

        return Prediction(index, produce)

    # final-output helpers (step-level methods) ---------------------------------------------------------------
    def record_final(self, call, outputs, order, allow_higher):
        """Feeds the last block's output (image or joint stream) to the step-level ladder."""
        self.update_ladder(call, ("final",), order, outputs[0], allow_higher)
        call.state.set(call.key("final_arity"), len(outputs))

    def final_ready(self, call):
        final = call.state.get(call.key("final"))
        return final is not None and final.ready

    def predict_final(self, call):
        """Skips blocks from the current one to the last; the last block's main stream is extrapolated and its
        other streams (discarded by the model after the last block) are passed on."""
        final, arity, position = call.state.get(call.key("final")), call.state.get(call.key("final_arity")), call.position

        def produce(streams):
            return (final.predict(position),) + tuple(streams[1:arity])

        return Prediction(len(self.blocks) - 1, produce)

    def residual_prediction_of(self, call, index, stream=0, group="block"):
        ladder = call.state.get(call.key(group, index, stream))
        return ladder.predict(call.position)
