"""Quality of cache configs against the uncached output of the same prompt and seed, and the free baseline:
fewer denoising steps with no cache at the same compute fraction."""
import dataclasses
import statistics
import time

import numpy as np

from .api import apply_cache, remove_cache, summary
from .metrics import psnr, ssim


def sample(pipe, prompt, seed, steps, height=32, width=32):
    import paddle

    pipe.set_progress_bar_config(disable=True)
    start = time.perf_counter()
    out = pipe(prompt=prompt, num_inference_steps=steps, generator=paddle.Generator().manual_seed(int(seed)),
               output_type="np", height=height, width=width)
    return np.asarray(out.images[0]), time.perf_counter() - start


@dataclasses.dataclass
class Row:
    name: str
    method: str
    compute_fraction: float
    ssim: float
    psnr: float
    speedup: float
    cache_bytes: int = 0
    fewer_steps_ssim: float = float("nan")  # the no-cache baseline's SSIM at this compute fraction

    def as_dict(self):
        return dataclasses.asdict(self)


def references(pipe, cases, steps):
    """Uncached images and their times for (prompt, seed) cases."""
    remove_cache(pipe)
    return [sample(pipe, prompt, seed, steps) for prompt, seed in cases]


def evaluate_config(pipe, name, config, cases, steps, refs):
    """Mean SSIM / PSNR / compute fraction over the cases; speed-up from the median of paired timings."""
    apply_cache(pipe, config)
    scores, fractions, times, cache_bytes = [], [], [], 0
    for (prompt, seed), (reference, _) in zip(cases, refs):
        image, seconds = sample(pipe, prompt, seed, steps)
        stats = summary(pipe)
        scores.append((ssim(image, reference), min(psnr(image, reference), 100.0)))
        fractions.append(stats["compute_fraction"])
        times.append(seconds)
        cache_bytes = max(cache_bytes, stats["cache_bytes"])
        method = stats["method"]
    remove_cache(pipe)
    speedup = statistics.median(t for _, t in refs) / statistics.median(times)
    return Row(name, method, float(np.mean(fractions)), float(np.mean([s for s, _ in scores])),
               float(np.mean([p for _, p in scores])), speedup, cache_bytes)


def fewer_steps_baseline(pipe, cases, steps, refs, step_counts=None):
    """Rows for `k` of `steps` steps, no cache: compute fraction k / steps."""
    step_counts = step_counts or sorted({max(1, round(steps * f)) for f in (0.25, 0.35, 0.45, 0.5, 0.6, 0.7, 0.8)})
    remove_cache(pipe)
    rows = []
    for k in step_counts:
        images = [sample(pipe, prompt, seed, k) for prompt, seed in cases]
        rows.append(Row(f"fewer steps ({k}/{steps})", "none", k / steps,
                        float(np.mean([ssim(a, r) for (a, _), (r, _) in zip(images, refs)])),
                        float(np.mean([min(psnr(a, r), 100.0) for (a, _), (r, _) in zip(images, refs)])),
                        statistics.median(t for _, t in refs) / statistics.median(t for _, t in images)))
    return rows


def baseline_ssim_at(baseline_rows, fraction):
    """Linear interpolation of the fewer-steps SSIM at a compute fraction."""
    points = sorted((r.compute_fraction, r.ssim) for r in baseline_rows)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return float(np.interp(fraction, xs, ys))


def format_table(rows):
    lines = ["| config | method | compute fraction | SSIM | PSNR (dB) | speed-up | fewer-steps SSIM at same compute | cache KiB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r.compute_fraction):
        baseline = "" if np.isnan(r.fewer_steps_ssim) else f"{r.fewer_steps_ssim:.4f}"
        lines.append(f"| {r.name} | {r.method} | {r.compute_fraction:.3f} | {r.ssim:.4f} | {r.psnr:.2f} | "
                     f"{r.speedup:.2f}x | {baseline} | {r.cache_bytes / 1024:.0f} |")
    return "\n".join(lines)
