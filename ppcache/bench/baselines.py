"""SSIM baselines of the shipped configs on the bundled model: what CI's regression test compares against.

Baselines change only through `python tools/update_baselines.py`.
"""
import glob
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASELINE_FILE = os.path.join(ROOT, "tests", "baselines", "ssim_baselines.json")
SSIM_TOLERANCE = 0.01
COMPUTE_TOLERANCE = 0.02
NUM_PROMPTS = 8


def shipped_configs():
    """Every cache config under configs/ (the no-cache baseline excluded)."""
    from ..config import load_config

    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
    return {os.path.basename(p): p for p in paths if load_config(p).cache.method != "none"}


def regression_cases():
    from .prompts import bundled_prompts

    prompts = bundled_prompts()
    step = max(1, len(prompts) // NUM_PROMPTS)
    return [(prompt, index) for index, prompt in enumerate(prompts[::step][:NUM_PROMPTS])]


def measure(pipe, config_paths, steps):
    """{config name: {ssim, psnr, compute_fraction}} on the regression cases."""
    from ..config import load_config
    from .evaluate import evaluate_config, references

    cases = regression_cases()
    refs = references(pipe, cases, steps)
    results = {}
    for name, path in config_paths.items():
        row = evaluate_config(pipe, name, load_config(path).cache, cases, steps, refs)
        results[name] = {"ssim": round(row.ssim, 5), "psnr": round(row.psnr, 3),
                         "compute_fraction": round(row.compute_fraction, 5)}
    return results


def load_baselines(path=BASELINE_FILE):
    with open(path) as handle:
        return json.load(handle)


def write_baselines(results, model, steps, path=BASELINE_FILE):
    data = {"model": model, "steps": steps, "cases": regression_cases(), "ssim_tolerance": SSIM_TOLERANCE,
            "compute_tolerance": COMPUTE_TOLERANCE, "configs": results}
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
