"""MagCache (arXiv 2506.09045): the ratio of successive residual magnitudes (the whole block stack's residual,
||r_t|| / ||r_t-1|| averaged over tokens) follows one smooth curve for a model whatever the prompt, so one
uncached generation calibrates it. At run time the curve alone decides: after the retained first steps, each step
multiplies the ratios since the last computed step and adds |1 - product| to an error; while the error stays
under `threshold` and at most `max_skip_steps` steps in a row were skipped, the step reuses the cached residual.
The decisions follow from the curve alone (one skip plan per step count, `skip_plan`), so a MagCache step
makes no host read, and a calibration tool can print the compute of every threshold without a generation."""
import dataclasses
import json
import math
from typing import Optional, Union

import numpy as np

from ..errors import ConfigError
from .base import MethodConfig
from .step_residual import StepResidualPolicy, check_step_settings

CALIBRATE_HINT = "run `python tools/calibrate_magcache.py --model PATH` (or tools/tune.py) and use the config it writes"


@dataclasses.dataclass
class MagCacheConfig(MethodConfig):
    """MagCache.

    Attributes:
        threshold: skip while the accumulated error sum |1 - prod(ratios)| stays at or below this, in [0, 1]
            (the paper's default 0.06; higher skips more; 0 skips only where the curve is flat).
        max_skip_steps: skipped steps in a row at most (the paper's K, 2-4).
        retention_ratio: the first retention_ratio x steps steps (rounded; at least one) are always computed, in
            [0, 1).
        calibration: this model's magnitude-ratio curve: the mapping tools/calibrate_magcache.py writes into its
            config ({model, steps, ratios}), or the path of a JSON file holding it.
        scale_residual: multiply the reused residual by the product of the ratios since the last computed step
            (its expected magnitude); False reuses it as it was (the paper).
        order: 0 adds the cached residual; 1 extrapolates it linearly in the step index, 2-3 Taylor.
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "magcache"
    threshold: float = 0.06
    max_skip_steps: int = 2
    retention_ratio: float = 0.2
    calibration: Optional[Union[str, dict]] = None
    scale_residual: bool = False
    order: int = 0

    def validate(self, where="cache"):
        check_step_settings(where, self, "the paper's default is 0.06")
        if self.max_skip_steps < 1:
            raise ConfigError(f"{where}.max_skip_steps must be >= 1, got {self.max_skip_steps}")
        if isinstance(self.calibration, dict):
            MagnitudeCurve.from_mapping(self.calibration, f"{where}.calibration")


class MagnitudeCurve:
    """Per guidance branch, the magnitude ratio of each step (ratios[branch][0] = 1: the first step has no
    predecessor), for the model described by `model` (Adapter.identity()) at `steps` steps. The first branch's curve
    (the conditional call's) is the one MagCache decides by; the others are recorded to show how close they are."""

    def __init__(self, model, steps, ratios):
        self.model, self.steps, self.ratios = dict(model), int(steps), [[float(r) for r in row] for row in ratios]

    def to_mapping(self):
        return {"model": self.model, "steps": self.steps, "ratios": [[round(r, 6) for r in row] for row in self.ratios]}

    @classmethod
    def from_mapping(cls, data, where):
        if not isinstance(data, dict) or not {"model", "steps", "ratios"} <= set(data):
            raise ConfigError(f"{where} must hold model, steps and ratios (as written by tools/calibrate_magcache.py)"
                              f"; {CALIBRATE_HINT}")
        model, steps, ratios = data["model"], data["steps"], data["ratios"]
        if not isinstance(model, dict) or not {"family", "blocks"} <= set(model):
            raise ConfigError(f"{where}.model must name the calibrated model's family and blocks; {CALIBRATE_HINT}")
        if not isinstance(steps, int) or steps < 2:
            raise ConfigError(f"{where}.steps must be an integer >= 2, got {steps!r}")
        rows = ratios if isinstance(ratios, list) and ratios and isinstance(ratios[0], list) else None
        if rows is None or any(len(row) != steps for row in rows) or not all(
                isinstance(r, (int, float)) and not isinstance(r, bool) and 0 < r < math.inf for row in rows
                for r in row):
            raise ConfigError(f"{where}.ratios must be one list of {steps} positive numbers per guidance branch")
        return cls(model, steps, rows)

    @classmethod
    def load(cls, source, where="cache.calibration"):
        """From a mapping or the path of a JSON file."""
        if isinstance(source, dict):
            return cls.from_mapping(source, where)
        try:
            with open(source, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"{where}: calibration file not found: {source}; {CALIBRATE_HINT}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{where}: {source} is not a MagCache calibration (not JSON: {error})") from None
        return cls.from_mapping(data, f"{where} ({source})")

    def check_model(self, identity):
        """A one-line error unless the curve was measured on a model of this architecture."""
        mine = self.model
        if (mine.get("family"), mine.get("blocks")) == (identity["family"], identity["blocks"]) and (
                mine.get("block_parameters") in (None, identity["block_parameters"])):
            return

        def describe(m):
            size = f", {m['block_parameters']:,} block parameters" if m.get("block_parameters") else ""
            return f"a {m.get('family')} transformer with {m.get('blocks')} blocks{size}"

        raise ConfigError(f"magcache: the calibration was measured on {describe(mine)}, but this model is "
                          f"{describe(identity)}; calibrate this model: {CALIBRATE_HINT}")

    def for_steps(self, steps):
        """The first branch's ratios resampled to `steps` steps: the cumulative magnitude (the product of the ratios)
        is interpolated in log space over the generation's relative position, so a run with fewer, larger steps gets
        correspondingly larger ratios."""
        row = self.ratios[0]
        if steps == self.steps:
            return list(row)
        log_magnitude = np.cumsum(np.log(row))
        position = np.linspace(0.0, 1.0, self.steps)
        resampled = np.interp(np.linspace(0.0, 1.0, steps), position, log_magnitude)
        return [1.0] + np.exp(np.diff(resampled)).tolist()


def skip_plan(ratios, threshold, max_skip_steps, retention_ratio):
    """Per step, (skip, accumulated ratio, accumulated error) under MagCache's rule, from the curve alone: the first
    step and the retained steps are computed; a computed step resets the accumulators."""
    plan, ratio, skipped, error = [], 1.0, 0, 0.0
    retained = max(1, int(retention_ratio * len(ratios) + 0.5))
    for step, step_ratio in enumerate(ratios):
        if step < retained:
            plan.append((False, 1.0, 0.0))
            continue
        ratio, skipped = ratio * step_ratio, skipped + 1
        error += abs(1.0 - ratio)
        skip = error <= threshold and skipped <= max_skip_steps
        plan.append((skip, ratio, error))
        if not skip:
            ratio, skipped, error = 1.0, 0, 0.0
    return plan


class MagCachePolicy(StepResidualPolicy):
    name = "magcache"

    def __init__(self, config):
        super().__init__(config)
        if config.calibration is None:
            raise ConfigError(f"magcache needs this model's magnitude-ratio calibration (cache.calibration); "
                              f"{CALIBRATE_HINT}")
        self.curve = MagnitudeCurve.load(config.calibration)
        self.plans = {}

    def bind(self, engine):
        super().bind(engine)
        self.curve.check_model(engine.adapter.identity())

    def plan(self, steps):
        """The skip plan of a generation of `steps` steps (computed once per step count), from the first branch's
        curve: every guidance branch of a step skips or computes together."""
        if steps not in self.plans:
            config = self.config
            self.plans[steps] = skip_plan(self.curve.for_steps(steps), config.threshold, config.max_skip_steps,
                                          config.retention_ratio)
        return self.plans[steps]

    def decide_step(self, io, call):
        ctx = call.ctx
        if ctx.num_steps is None:
            self.notice("magcache: the generation's step count is unknown, so every step is computed: run through "
                        "a pipeline, or set num_inference_steps")
            return None
        skip, ratio, error = self.plan(ctx.num_steps)[min(ctx.step, ctx.num_steps - 1)]
        call.record.indicator = error
        if not (skip or call.over_budget) or not self.residual_ready(call):
            return None
        # a step the cap forces to skip reuses the residual as it was (the plan expected it to be computed)
        return self.skip_step(call, ratio if skip and self.config.scale_residual else None)
