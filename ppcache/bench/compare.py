"""Cached vs uncached on the same seed: wall-clock speed-up, compute fraction, SSIM/PSNR, what ran."""
import statistics

import numpy as np

from ..api import apply_cache, remove_cache, summary
from .metrics import mean_quality, psnr, ssim, temporal_ssim
from ..pipelines.run import generate


def compare(pipe, run, cache_config, repeats=3):
    """Generates `run` uncached and cached (interleaved, `repeats` times after one warm-up each) and reports.

    Returns (report dict, uncached PIL image, cached PIL image); for a video pipeline the images are lists of
    frames, SSIM/PSNR are per-frame means and `temporal_ssim` compares the frame-to-frame motion.
    """
    remove_cache(pipe)
    generate(pipe, run)  # warm-up
    uncached_times, cached_times = [], []
    reference = cached = None
    for _ in range(max(1, repeats)):
        remove_cache(pipe)
        reference, seconds = generate(pipe, run)
        uncached_times.append(seconds)
        apply_cache(pipe, cache_config)
        cached, seconds = generate(pipe, run)
        cached_times.append(seconds)
    stats = summary(pipe)
    remove_cache(pipe)
    if isinstance(reference, list):
        quality, motion = mean_quality(cached, reference), temporal_ssim(cached, reference)
    else:
        a, b = np.asarray(cached), np.asarray(reference)
        quality, motion = (ssim(a, b), psnr(a, b)), None
    report = {
        "method": stats["method"],
        "uncached_seconds": statistics.median(uncached_times),
        "cached_seconds": statistics.median(cached_times),
        "speedup": statistics.median(uncached_times) / statistics.median(cached_times),
        "compute_fraction": stats["compute_fraction"],
        "ssim": quality[0],
        "psnr": quality[1],
        "temporal_ssim": motion,
        "cache_bytes": stats["cache_bytes"],
        "steps": stats["steps"],
        "full_steps": stats["full_steps"],
        "blocks_computed": stats["blocks_computed"],
        "blocks_predicted": stats["blocks_predicted"],
        "fallbacks": stats["fallbacks"],
    }
    return report, reference, cached


def format_report(report):
    blocks = report["blocks_computed"] + report["blocks_predicted"]
    return "\n".join([
        f"method: {report['method']}",
        f"wall time: uncached {report['uncached_seconds']:.3f} s, cached {report['cached_seconds']:.3f} s "
        f"-> speed-up {report['speedup']:.2f}x",
        f"compute fraction: {report['compute_fraction']:.3f} (ideal speed-up {1 / report['compute_fraction']:.2f}x)",
        f"quality vs uncached: SSIM {report['ssim']:.4f}, PSNR {report['psnr']:.2f} dB"
        + ("" if report.get("temporal_ssim") is None else
           f" (per-frame means); temporal SSIM {report['temporal_ssim']:.4f}"),
        f"steps fully computed: {report['full_steps']} of {report['steps']}; blocks computed "
        f"{report['blocks_computed']} of {blocks}, predicted {report['blocks_predicted']}",
        f"cache memory: {report['cache_bytes'] / 1024:.1f} KiB; non-finite fallbacks: {report['fallbacks']}",
    ])


def side_by_side(left, right):
    """Two images side by side; two videos: frame by frame."""
    from PIL import Image

    if isinstance(left, list):
        return [side_by_side(a, b) for a, b in zip(left, right)]
    canvas = Image.new("RGB", (left.width + right.width + 4, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 4, 0))
    return canvas
