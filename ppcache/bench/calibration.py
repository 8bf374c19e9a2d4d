"""Calibrations measured on a model's own uncached generations.

TeaCache: record (indicator rel-L1, output rel-L1) pairs, fit y ~ poly4(x) in fp64, report R^2 and the compute
each threshold would give. MagCache: the magnitude-ratio curve of the whole block stack's residual, averaged over
the generations, and the compute each threshold gives (exact: MagCache decides from the curve alone)."""
import dataclasses

import numpy as np

from .. import ops
from ..api import apply_cache, remove_cache
from ..config import DEFAULT_RESOLUTION
from ..errors import PPCacheError
from ..policies.base import Policy
from ..policies.magcache import MagnitudeCurve, skip_plan
from ..policies.step_residual import StepResidualPolicy
from ..policies.teacache import TeaCachePolicy
from .evaluate import cached_samples, references, sample
from .metrics import ssim


class TeaCacheRecorder(Policy):
    """Computes every block; records block 0's modulated-input change (TeaCache's own code path) and the
    change of the last block's output between consecutive steps, per branch."""

    name = "teacache_recorder"
    decides = False

    def __init__(self):
        super().__init__(None)
        self.pairs = []

    def decide(self, index, io, call):
        if index == 0:
            modulated = self.adapter.modulated_input(self.blocks[0], io)
            previous = call.state.get(call.key("m_prev"))
            call.state.set(call.key("m_prev"), modulated)
            call.x = None if previous is None else ops.rel_l1(modulated, previous, per_sample=False)
        return None

    def after_compute(self, index, io, outputs, call):
        if index != len(self.blocks) - 1:
            return
        previous = call.state.get(call.key("out_prev"))
        call.state.set(call.key("out_prev"), outputs[0])
        if previous is not None and call.x is not None:
            y = ops.rel_l1(outputs[0], previous, per_sample=False)
            self.pairs.append((float(call.x), float(y)))


def fit_polynomial(x, y, degree=4):
    """Least squares in fp64; returns (coefficients highest power first, R^2)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    coefficients = np.polyfit(x, y, degree)
    residual = y - np.polyval(coefficients, x)
    total = ((y - y.mean()) ** 2).sum()
    return coefficients.tolist(), float(1 - (residual**2).sum() / total) if total > 0 else 1.0


def simulate_thresholds(traces, coefficients, thresholds):
    """Computed-step fraction per threshold, replaying TeaCache's accumulate rule on recorded indicator traces
    (one list of per-step rel-L1 values per generation; first and last steps are always computed)."""
    result = {}
    for threshold in thresholds:
        computed = total = 0
        for trace in traces:
            accumulated = 0.0
            for step, rel in enumerate(trace):
                total += 1
                if step == 0 or step == len(trace) - 1:
                    computed += 1
                    accumulated = 0.0
                    continue
                accumulated += float(np.polyval(coefficients, rel))
                if accumulated >= threshold:
                    computed += 1
                    accumulated = 0.0
        result[threshold] = computed / total if total else 1.0
    return result


class MagnitudeRecorder(StepResidualPolicy):
    """Computes every step; records, per generation and guidance branch, MagCache's magnitude ratio: the mean over
    tokens of ||r_t|| / ||r_t-1||, r the whole block stack's residual (main stream)."""

    name = "magcache_calibration"
    decides = False

    def __init__(self):
        super().__init__(None)
        self.rows = {}  # (generation, branch) -> {step: ratio}

    def step_computed(self, call, step_input, step_output, residual):
        ctx = call.ctx
        row = self.rows.setdefault((ctx.generation, ctx.branch), {})
        previous = call.state.get(call.key("residual_prev"))
        call.state.set(call.key("residual_prev"), residual)
        if previous is None or previous.shape != residual.shape:
            row[ctx.step] = 1.0
            return
        call.collect(ops.token_norm_ratio(residual, previous),
                     lambda host, step=ctx.step: row.__setitem__(step, float(host[0])))

    def curve(self, steps):
        """The mean curve over the recorded generations, one row per branch."""
        ratios = []
        for branch in sorted({branch for _, branch in self.rows}):
            runs = [[row[s] for s in range(steps)] for (_, b), row in self.rows.items()
                    if b == branch and sorted(row) == list(range(steps))]
            if not runs:
                raise PPCacheError(f"magcache calibration: no complete {steps}-step generation was recorded")
            ratios.append(np.mean(runs, axis=0).tolist())
        if not ratios:
            raise PPCacheError("magcache calibration: the pipeline ran no transformer call")
        return MagnitudeCurve(self.engine.adapter.identity(), steps, ratios)


def calibrate_magcache(pipe, cases, steps, height=DEFAULT_RESOLUTION, width=DEFAULT_RESOLUTION):
    """MagCache's magnitude-ratio curve (a MagnitudeCurve) from uncached generations of (prompt, seed) `cases`."""
    recorder = MagnitudeRecorder()
    apply_cache(pipe, recorder)
    try:
        for prompt, seed in cases:
            sample(pipe, prompt, seed, steps, height, width)
    finally:
        remove_cache(pipe)
    return recorder.curve(steps)


def simulate_magcache(curve, steps, thresholds, max_skip_steps, retention_ratio):
    """{threshold: computed-step fraction} of MagCache at `steps` steps, from the curve alone (its first branch)."""
    ratios = curve.for_steps(steps)
    return {threshold: sum(not skip for skip, _, _ in skip_plan(ratios, threshold, max_skip_steps, retention_ratio))
            / steps for threshold in thresholds}


def matching_threshold(curve, steps, config, fraction):
    """The threshold whose plan on `curve` computes the fraction nearest `fraction` (of equal ones, the one nearest
    `config.threshold`): a calibration is compared with another at the same compute."""
    grid = sorted(set(np.geomspace(1e-3, 1.0, 121).round(6).tolist() + [config.threshold]))
    computes = simulate_magcache(curve, steps, grid, config.max_skip_steps, config.retention_ratio)
    return min(grid, key=lambda t: (abs(computes[t] - fraction), abs(np.log(t / config.threshold))))


def magcache_transfer(pipe, config, cases, steps, height=DEFAULT_RESOLUTION, width=DEFAULT_RESOLUTION):
    """Whether one calibration serves other prompts and seeds: per (prompt, seed) case, SSIM against the uncached
    image and compute fraction of MagCache `config` on its own curve ("transferred") and on a curve calibrated on that
    very case ("own"), whose threshold is set to compute the same fraction."""
    written = MagnitudeCurve.load(config.calibration)
    fraction = simulate_magcache(written, steps, [config.threshold], config.max_skip_steps,
                                 config.retention_ratio)[config.threshold]
    rows = []
    for case in cases:
        reference = references(pipe, [case], steps, height, width)[0][0]
        curve = calibrate_magcache(pipe, [case], steps, height, width)
        own = dataclasses.replace(config, calibration=curve.to_mapping(),
                                  threshold=matching_threshold(curve, steps, config, fraction))
        row = dict(prompt=case[0], seed=case[1])
        for name, variant in (("transferred", config), ("own", own)):
            (image, stats, _), = cached_samples(pipe, variant, [case], steps, height, width)
            row.update({f"{name}_ssim": ssim(image, reference), f"{name}_compute": stats["compute_fraction"]})
        rows.append(row)
    return rows


# What a tune can measure for a method that needs it (ppcache.bench.knobs): kind -> f(pipe, cases, steps, height,
# width) -> the config's `calibration` value.
CALIBRATIONS = {"magcache": lambda *args: calibrate_magcache(*args).to_mapping()}

__all__ = ["CALIBRATIONS", "TeaCacheRecorder", "TeaCachePolicy", "fit_polynomial", "simulate_thresholds",
           "MagnitudeRecorder", "calibrate_magcache", "simulate_magcache", "magcache_transfer"]
