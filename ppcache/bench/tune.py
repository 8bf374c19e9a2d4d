"""Tuning cache methods for a compute budget on a model: for each candidate (ppcache.bench.knobs), the setting of
its knob whose mean compute fraction on calibration images is at most the budget and as close to it as the
method allows; then each candidate's pick, and the fewer-steps baseline, on held-out prompts and seeds.

Compute falls as a threshold rises only on average over images, so the bisection runs on the mean compute
fraction over the calibration cases and keeps every point it measures. A candidate's pick is its measured point
with the best calibration SSIM within the budget; points within one paired standard error of the best SSIM are
a tie (16 calibration images rank points a few thousandths apart by noise), which goes to the points that spend the
budget (mean compute fraction within BUDGET_BAND below it), then to the higher PSNR. The overall pick follows the
same rule over the candidates' picks: a cheaper candidate wins only with a clear SSIM lead, and is then both better
and faster. The held-out images only validate the pick (they choose nothing).

All images go through ppcache.bench.runner.Benchmark: references once, one record file per image, reruns resume,
and under `paddle.distributed.launch` every rank measures its share of the cases of each point, then reads the
merged records, so every rank takes the same bisection path.
"""
import dataclasses
import math
import statistics
from typing import Dict, List, Optional

import numpy as np

from ..config import build_cache_section
from ..errors import PPCacheError
from ..policies import POLICIES
from .knobs import CANDIDATES, Knob
from .plots import FEWER_STEPS
from .runner import FEWER_STEPS_FRACTIONS, Variant, fewer_steps

HOLDOUT_EVERY = 3  # the default split: every 3rd prompt is held out


class TuneError(PPCacheError, ValueError):
    """A tune cannot start (bad budget, unknown candidate, too few prompts) or no candidate reaches the budget."""


def budget_from(budget=None, speedup=None, what="--budget"):
    """The compute-fraction budget from `--budget` (a fraction in (0, 1]) or `--speedup` (>= 1)."""
    if (budget is None) == (speedup is None):
        raise TuneError("give the budget once: --budget FRACTION (e.g. 0.4) or --speedup X (e.g. 2.5)")
    if speedup is not None:
        if not speedup >= 1:
            raise TuneError(f"--speedup must be at least 1 (2.5 means compute fraction 0.4), got {speedup:g}")
        return 1.0 / speedup
    if not 0 < budget <= 1:
        raise TuneError(f"{what} must be a compute fraction in (0, 1], e.g. 0.4"
                        + (" (or use --speedup 2.5)" if what == "--budget" else "") + f", got {budget:g}")
    return float(budget)


def candidates_from(names=None):
    """{name: Knob} of the named candidates, in the order given (all of CANDIDATES when `names` is empty)."""
    names = list(names or CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise TuneError(f"unknown method {unknown[0]!r} for --methods; candidates: {', '.join(CANDIDATES)}")
    return {name: CANDIDATES[name] for name in dict.fromkeys(names)}


def split_entries(entries, every=HOLDOUT_EVERY):
    """(calibration, held-out) prompt entries: every `every`-th entry is held out (the last one when there are
    fewer than `every`)."""
    held = [i for i in range(len(entries)) if (i + 1) % every == 0] or [len(entries) - 1]
    if len(entries) < 2:
        raise TuneError(f"the prompt set holds {len(entries)} prompt: a tune needs at least 2 (calibration and "
                        "held-out); add prompts or pass --holdout FILE")
    return [e for i, e in enumerate(entries) if i not in held], [entries[i] for i in held]


# ---- the search -------------------------------------------------------------------------------------------------
def midpoint(over, within, knob):
    """The next value between a point over the budget and one within it; None when nothing lies between."""
    if knob.integer:
        value = (over + within) // 2
    elif over > 0 and within > 0:
        value = math.sqrt(over * within)  # thresholds: their effect is roughly proportional
    else:
        value = (over + within) / 2
    value = knob.value(value)
    return None if value in (over, within) else value


def bisect_knob(fraction_at, knob, budget, evaluations=7, tolerance=0.01):
    """Searches `knob` for the value whose `fraction_at(value)` (mean compute fraction) is at most `budget` and
    within `tolerance` of it, in at most `evaluations` calls. The cheap end first: over the budget there, no
    value reaches it. Then the expensive end, then bisection. Returns [(value, fraction)] in evaluation order."""
    points = []

    def probe(value):
        points.append((value, fraction_at(value)))
        return points[-1][1]

    over, within = knob.value(knob.expensive), knob.value(knob.cheap)
    if probe(within) > budget or probe(over) <= budget:
        return points  # unreachable, or even the most expensive setting is within the budget
    while len(points) < evaluations:
        value = midpoint(over, within, knob)
        if value is None:
            break
        if probe(value) <= budget:
            within = value
            if budget - points[-1][1] <= tolerance:
                break
        else:
            over = value
    return points


@dataclasses.dataclass
class Point:
    """One measured setting of a candidate: its variant and per-image records (calibration or held-out)."""

    candidate: str
    label: str
    variant: Variant
    records: List[dict]

    @property
    def compute_fraction(self):
        return float(np.mean([r["compute_fraction"] for r in self.records]))

    @property
    def ssim(self):
        return float(np.mean([r["ssim"] for r in self.records]))

    @property
    def psnr(self):
        return float(np.mean([r["psnr"] for r in self.records]))

    def stderr_against(self, other):
        """Standard error of the mean per-image SSIM difference to `other`, measured on the same images."""
        diffs = [a["ssim"] - b["ssim"] for a, b in zip(self.records, other.records)]
        return float(np.std(diffs, ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else 0.0


# A point "spends the budget" when its mean compute fraction is within this much below it.
BUDGET_BAND = 0.03


def pick(points, budget, band=BUDGET_BAND):
    """The best point within the budget; None when none is within it. Best: the highest mean SSIM, except that
    points whose SSIM is within one paired standard error of it are a tie, which goes to those that spend the
    budget (budget - band <= compute fraction), then to the higher PSNR, then to the compute closest to the budget.
    A cheaper point wins only with an SSIM lead beyond the noise: it is then better and faster."""
    within = [p for p in points if p.compute_fraction <= budget]
    if not within:
        return None
    best = max(within, key=lambda p: (p.ssim, p.compute_fraction))
    tied = [p for p in within if best.ssim - p.ssim <= best.stderr_against(p)]
    spending = [p for p in tied if p.compute_fraction >= budget - band] or tied
    return max(spending, key=lambda p: (p.psnr, p.compute_fraction))


def closest(points):
    """The cheapest point: where a candidate that cannot reach the budget gets nearest to it."""
    return min(points, key=lambda p: p.compute_fraction)


@dataclasses.dataclass
class Outcome:
    """A candidate's search: every calibration point, its pick (None: the budget is out of reach) and the pick's
    held-out point."""

    name: str
    knob: Knob
    points: List[Point]
    pick: Optional[Point] = None
    heldout: Optional[Point] = None

    @property
    def reaches(self):
        return self.pick is not None


@dataclasses.dataclass
class TuneResult:
    budget: float
    outcomes: Dict[str, Outcome]
    baseline: List[Point]  # fewer steps on the held-out cases
    choice: Optional[str]  # the overall pick's candidate name
    capped: Optional[Point] = None  # the pick with max_compute_fraction = `cap`, on the held-out cases

    def unreachable_message(self):
        """One line naming the closest point when no candidate reaches the budget."""
        nearest = closest([closest(o.points) for o in self.outcomes.values()])
        return (f"no candidate reaches compute fraction {self.budget:.3f} at these settings; the closest is "
                f"{nearest.candidate} {nearest.label} at {nearest.compute_fraction:.3f} (calibration SSIM "
                f"{nearest.ssim:.4f}): raise --budget to at least {nearest.compute_fraction:.3f} or add --methods")


class Tune:
    """Runs the search of every candidate and the held-out validation on `bench` (a Benchmark whose cases are
    the calibration cases at `calibration` positions and the held-out cases at `heldout` positions)."""

    def __init__(self, bench, budget, candidates, calibration, heldout, evaluations=7, tolerance=0.01, cap=None):
        self.bench, self.budget, self.candidates = bench, budget, candidates
        self.calibration, self.heldout = list(calibration), list(heldout)
        self.evaluations, self.tolerance, self.cap = evaluations, tolerance, cap

    def variant(self, name, knob, value, setting):
        label = knob.label(value, setting)
        config = build_cache_section(knob.cache_section(value, setting), where=f"cache ({name})")
        return label, Variant(f"{name} {label}", knob.method, self.bench.steps, config)

    def point(self, name, label, variant, indices):
        """`variant` measured on the cases at `indices` (what is on disk is read, not measured again)."""
        return Point(name, label, variant, self.bench.records(variant, indices))

    def search(self, name, knob):
        """Every calibration point of one candidate: a bisection per combination of its secondary settings."""
        if knob.calibration:
            calibration = self.bench.calibration(knob.calibration, self.calibration[0])
            knob = dataclasses.replace(knob, base=dict(knob.base, calibration=calibration))
        points = []
        for setting in knob.settings():
            measured = {}

            def fraction_at(value, setting=setting, measured=measured):
                measured[value] = self.point(name, *self.variant(name, knob, value, setting), self.calibration)
                return measured[value].compute_fraction

            bisect_knob(fraction_at, knob, self.budget, self.evaluations, self.tolerance)
            points.extend(measured.values())
        return points

    def baseline_variants(self):
        """Fewer steps at the usual fractions plus the step counts on either side of the budget."""
        steps = self.bench.steps
        around = (math.floor(self.budget * steps) / steps, math.ceil(self.budget * steps) / steps)
        fractions = sorted(set(FEWER_STEPS_FRACTIONS) | {f for f in around if f > 0})
        return fewer_steps(steps, fractions)

    def planned_images(self):
        """An upper bound of the images a run measures (for the progress bar)."""
        searched = sum(len(k.settings()) for k in self.candidates.values()) * self.evaluations * len(self.calibration)
        held = (len(self.candidates) + len(self.baseline_variants())) * len(self.heldout)
        return searched + held

    def run(self):
        outcomes = {}
        for name, knob in self.candidates.items():
            outcome = Outcome(name, knob, self.search(name, knob))
            outcome.pick = pick(outcome.points, self.budget)
            if outcome.pick is not None:
                outcome.heldout = self.point(name, outcome.pick.label, outcome.pick.variant, self.heldout)
            outcomes[name] = outcome
        reaching = [o for o in outcomes.values() if o.reaches]
        if not reaching:
            return TuneResult(self.budget, outcomes, [], None)
        choice = pick([o.pick for o in reaching], self.budget).candidate
        baseline = [self.point(FEWER_STEPS, v.name, v, self.heldout) for v in self.baseline_variants()]
        return TuneResult(self.budget, outcomes, baseline, choice, self.capped(outcomes[choice].pick))

    def capped(self, chosen):
        """The pick with the run-time cap `max_compute_fraction` = `cap` on the held-out cases (a cap given and a
        method that honours it), else None."""
        if self.cap is None or not POLICIES[chosen.variant.method][1].budget_guard:
            return None
        cache = dataclasses.replace(chosen.variant.cache, max_compute_fraction=self.cap)
        variant = Variant(f"{chosen.variant.name} cap", chosen.variant.method, chosen.variant.steps, cache)
        return self.point(chosen.candidate, f"{chosen.label} max_compute_fraction={self.cap:g}", variant, self.heldout)


def spread(records):
    """(min, median, max) of the per-image compute fractions."""
    fractions = [r["compute_fraction"] for r in records]
    return min(fractions), statistics.median(fractions), max(fractions)
