"""What a searched front is worth, measured on the same (prompt, seed) cases as the search:

- against FORA, SortBlock and fewer denoising steps without cache (the free baseline), at equal compute;
- transferred: a schedule searched at one step count and resolution, run at another (remapped by relative
  step position) against the uncached output and the fewer-steps baseline of that setting.
"""
import dataclasses
import warnings

import numpy as np

from ..bench.metrics import ssim


@dataclasses.dataclass
class Point:
    name: str
    compute_fraction: float
    ssim: float


class Setting:
    """One sampling setting (cases, steps, resolution) with its uncached references (given, or generated once)."""

    def __init__(self, pipe, cases, steps, height, width, references=None):
        self.pipe, self.cases, self.steps, self.height, self.width = pipe, list(cases), steps, height, width
        self.references = self.images(steps) if references is None else list(references)

    def images(self, steps):
        """Uncached images of the cases at `steps`."""
        from .. import remove_cache
        from ..bench.evaluate import sample

        remove_cache(self.pipe)
        return [sample(self.pipe, prompt, seed, steps, self.height, self.width)[0] for prompt, seed in self.cases]

    def mean_ssim(self, images):
        return float(np.mean([ssim(a, r) for a, r in zip(images, self.references)]))

    def measure(self, name, cache_config):
        """Point of a cache config (any method config, e.g. ScheduleConfig) in this setting."""
        from ..bench.evaluate import cached_samples

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a schedule remapped to other steps warns once per run
            runs = cached_samples(self.pipe, cache_config, self.cases, self.steps, self.height, self.width)
        return Point(name, float(np.mean([stats["compute_fraction"] for _, stats, _ in runs])),
                     self.mean_ssim([image for image, _, _ in runs]))

    def fewer_steps(self, fractions=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)):
        counts = sorted({max(1, round(self.steps * f)) for f in fractions} - {self.steps})
        return [Point(f"fewer steps ({k}/{self.steps})", k / self.steps, self.mean_ssim(self.images(k)))
                for k in counts]


def best_ssim_within(front, compute_fraction):
    """Best SSIM of the front points that cost at most `compute_fraction` (None if none does)."""
    inside = [p.ssim for p in front if p.compute_fraction <= compute_fraction + 1e-9]
    return max(inside) if inside else None


def interpolate_ssim(points, compute_fraction):
    """SSIM of the points' line at a compute fraction; None outside the measured range."""
    points = sorted(points, key=lambda p: p.compute_fraction)
    xs = [p.compute_fraction for p in points]
    if not xs[0] <= compute_fraction <= xs[-1]:
        return None
    return float(np.interp(compute_fraction, xs, [p.ssim for p in points]))


def dominance_lines(front, others):
    """One line per reference point: is some front point at most as costly and at least as good?"""
    lines, verdicts = [], []
    for point in others:
        best = best_ssim_within(front, point.compute_fraction)
        if best is None:
            lines.append(f"  {point.name} (cf {point.compute_fraction:.3f}, SSIM {point.ssim:.4f}): "
                         f"cheaper than every front point, not compared")
            continue
        verdicts.append(best >= point.ssim)
        lines.append(f"  {point.name} (cf {point.compute_fraction:.3f}, SSIM {point.ssim:.4f}): front reaches "
                     f"{best:.4f} at cf <= {point.compute_fraction:.3f} -> "
                     f"{'dominated' if verdicts[-1] else 'NOT dominated'}")
    return lines, verdicts


def target_report(front, references, fewer_steps, cap=0.5, rival="sortblock"):
    """Lines and a summary dict for the ECAD targets; `references` are measured Points of named configs."""
    lines, verdicts = dominance_lines(front, [p for p in references if p.name != rival] + list(fewer_steps))
    summary = {"front_dominates_references": bool(verdicts) and all(verdicts)}
    best = best_ssim_within(front, cap)
    for point in references:
        if point.name == rival:
            summary[f"best_ssim_at_cf_{cap}"] = best
            summary[f"{rival}_ssim"] = point.ssim
            met = best is not None and best >= point.ssim
            summary[f"beats_{rival}"] = met
            lines.append(f"  best front SSIM at cf <= {cap}: "
                         f"{'none' if best is None else f'{best:.4f}'} vs {rival} {point.ssim:.4f} "
                         f"(cf {point.compute_fraction:.3f}) -> {'met' if met else 'NOT met'}")
    return lines, summary


def transfer_rows(setting, schedules):
    """`schedules`: {label: schedule file}. Each is run in `setting` (its steps remapped if they differ)."""
    from ..policies.schedule import ScheduleConfig

    baseline = setting.fewer_steps()
    rows = []
    for label, path in schedules.items():
        point = setting.measure(label, ScheduleConfig(path=path))
        rows.append({"pick": label, "schedule": path, "compute_fraction": point.compute_fraction,
                     "ssim": point.ssim, "fewer_steps_ssim": interpolate_ssim(baseline, point.compute_fraction)})
    return rows
