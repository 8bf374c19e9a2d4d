"""Run in a subprocess with PPDiffusers from source first on the import path (see test_ppdiffusers_source.py).

    python compare_pipelines.py MODEL CONFIG [CONFIG ...]

For each cache config, on ppcache's pipeline and on the installed PPDiffusers' own pipeline classes (same weights,
same latents from the same seeds): mean SSIM against that pipeline's uncached image, mean compute fraction, and
whether the PPDiffusers pipeline gives its uncached image back bit for bit after remove_cache. Prints one JSON object.
"""
import json
import sys

import numpy as np

import ppcache
from ppcache.config import load_config, resolve_model_path
from ppcache.bench.evaluate import cached_samples, references, sample
from ppcache.bench.metrics import ssim
from ppcache.pipelines.loading import load_pipeline

CASES = [("a photo of a cat", 0)]  # one case: the test compares two pipelines, not image quality
STEPS = 20
REMOVAL_STEPS = 4  # removal is checked on a short run: bit for bit against the same short run before any cache


def main(model, config_paths):
    import ppdiffusers

    path = resolve_model_path(model)
    pipes = {source: load_pipeline(path, pipeline=source) for source in ("ppcache", "ppdiffusers")}
    refs = {source: references(pipe, CASES, STEPS) for source, pipe in pipes.items()}
    out = {"ppdiffusers_file": ppdiffusers.__file__,
           "pipeline_modules": {source: type(pipe).__module__ for source, pipe in pipes.items()},
           "uncached_max_abs_diff": max(float(np.abs(a[0] - b[0]).max())
                                        for a, b in zip(refs["ppcache"], refs["ppdiffusers"])),
           "configs": {}}
    before = sample(pipes["ppdiffusers"], *CASES[0], REMOVAL_STEPS)[0]
    for config_path in config_paths:
        cache = load_config(config_path).cache
        row = {}
        for source, pipe in pipes.items():
            runs = cached_samples(pipe, cache, CASES, STEPS)  # removes the cache afterwards
            row[source] = {"ssim": float(np.mean([ssim(image, ref[0]) for (image, _, _), ref in zip(runs, refs[source])])),
                           "compute_fraction": float(np.mean([stats["compute_fraction"] for _, stats, _ in runs])),
                           "notices": sorted({n for _, stats, _ in runs for n in stats["notices"]})}
        again = sample(pipes["ppdiffusers"], *CASES[0], REMOVAL_STEPS)[0]
        row["removal_bitwise"] = bool(np.array_equal(again, before))
        out["configs"][config_path] = row
    print(json.dumps(out))


if __name__ == "__main__":
    ppcache.remove_cache  # noqa: B018  (ppcache is imported first: quiet Paddle, compat patches)
    main(sys.argv[1], sys.argv[2:])
