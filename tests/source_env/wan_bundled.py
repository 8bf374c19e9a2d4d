"""The bundled trained tiny-wan (WanPipeline, PPDiffusers from source first on the import path): what it draws, how
it moves, four shipped configs cached on it, and MagCache on tiny-wan's own magnitude curve (calibrated on another
seed than the one measured, as one sample calibrates it).

    python wan_bundled.py    -> one JSON line
"""
import json
import os

import numpy as np

import ppcache
from ppcache.config import load_config, resolve_model_path
from ppcache.bench.calibration import calibrate_magcache
from ppcache.bench.evaluate import sample
from ppcache.bench.metrics import ssim, temporal_ssim
from ppcache.pipelines.loading import load_pipeline

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")
STEPS = 20
PROMPT = "a photo of a cat"


def main():
    pipe = load_pipeline(resolve_model_path("tiny-wan"))
    cat = sample(pipe, PROMPT, 0, STEPS)[0]
    digit = sample(pipe, "a handwritten digit 3", 0, STEPS)[0]
    out = dict(pipeline=type(pipe).__name__, shape=list(cat.shape), cat_mean=float(cat.mean()),
               digit_mean=float(digit.mean()), cat_vs_digit_ssim=ssim(cat, digit),
               motion=float(np.abs(np.diff(cat, axis=0)).mean()), configs={})
    curve = calibrate_magcache(pipe, [(PROMPT, 1)], STEPS)
    out["magcache_branches"] = len(curve.ratios)
    configs = {name: load_config(os.path.join(CONFIGS, f"{name}.yaml")).cache
               for name in ("dbcache_fast", "teacache", "taylorseer", "easycache")}
    configs["magcache"] = ppcache.MagCacheConfig(threshold=0.1, max_skip_steps=2, calibration=curve.to_mapping())
    for name, config in configs.items():
        ppcache.apply_cache(pipe, config)
        try:
            video = sample(pipe, PROMPT, 0, STEPS)[0]
            fraction = ppcache.summary(pipe)["compute_fraction"]
        finally:
            removed = ppcache.remove_cache(pipe)
        out["configs"][name] = dict(compute_fraction=fraction, ssim=ssim(video, cat),
                                    temporal_ssim=temporal_ssim(video, cat), removed=bool(removed))
    out["restored"] = bool(np.array_equal(sample(pipe, PROMPT, 0, STEPS)[0], cat))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
