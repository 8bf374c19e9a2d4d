"""Quality of cache configs against the uncached output of the same prompt and seed (CI baselines, schedule
search). The full benchmark, with the fewer-steps baseline, timings and plots, is ppcache.bench."""
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

