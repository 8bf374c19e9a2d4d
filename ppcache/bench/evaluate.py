"""Quality of cache configs against the uncached output of the same prompt and seed (CI baselines, schedule
search). The full benchmark, with the fewer-steps baseline, timings and plots, is ppcache.bench."""
import dataclasses
import statistics
import time

import numpy as np

from ..api import apply_cache, remove_cache, summary
from ..config import DEFAULT_RESOLUTION
from .metrics import psnr, ssim


def sample(pipe, prompt, seed, steps, height=DEFAULT_RESOLUTION, width=DEFAULT_RESOLUTION):
    """(image [H, W, 3] float in [0, 1], seconds) of one generation; a video pipeline gives its frames
    [F, H, W, 3] (at the checkpoint's recorded frame count, else the pipeline's default)."""
    import paddle

    from ..pipelines.run import first_output, model_call_kwargs

    pipe.set_progress_bar_config(disable=True)
    start = time.perf_counter()
    out = pipe(prompt=prompt, num_inference_steps=steps, generator=paddle.Generator().manual_seed(int(seed)),
               output_type="np", height=height, width=width, **model_call_kwargs(pipe))
    return np.asarray(first_output(pipe, out)), time.perf_counter() - start


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


def references(pipe, cases, steps, height=DEFAULT_RESOLUTION, width=DEFAULT_RESOLUTION):
    """Uncached images and their times for (prompt, seed) cases."""
    remove_cache(pipe)
    return [sample(pipe, prompt, seed, steps, height, width) for prompt, seed in cases]


def cached_samples(pipe, config, cases, steps, height=DEFAULT_RESOLUTION, width=DEFAULT_RESOLUTION):
    """[(image, summary stats, seconds)] of a cache config on (prompt, seed) cases; the cache is removed after."""
    apply_cache(pipe, config)
    try:
        runs = []
        for prompt, seed in cases:
            image, seconds = sample(pipe, prompt, seed, steps, height, width)
            runs.append((image, summary(pipe), seconds))
    finally:
        remove_cache(pipe)
    return runs


def evaluate_config(pipe, name, config, cases, steps, refs):
    """Mean SSIM / PSNR / compute fraction over the cases; speed-up from the median of paired timings."""
    runs = cached_samples(pipe, config, cases, steps)
    scores = [(ssim(image, reference), min(psnr(image, reference), 100.0))
              for (image, _, _), (reference, _) in zip(runs, refs)]
    speedup = statistics.median(t for _, t in refs) / statistics.median(t for _, _, t in runs)
    return Row(name, runs[0][1]["method"], float(np.mean([stats["compute_fraction"] for _, stats, _ in runs])),
               float(np.mean([s for s, _ in scores])), float(np.mean([p for _, p in scores])), speedup,
               max(stats["cache_bytes"] for _, stats, _ in runs))

