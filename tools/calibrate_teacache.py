"""Fit TeaCache's rescale polynomial for a model: record indicator/output changes over uncached sampling of a
prompt set, fit y ~ poly4(x), print R^2 and a threshold-to-compute table, write a ready-to-use config.

    python tools/calibrate_teacache.py [--model tiny-flux] [--pipeline ppcache|ppdiffusers] [--steps 20] [--prompts FILE] [--out configs/teacache_calibrated.yaml]

Refit for each model, resolution and step count (coefficients do not transfer between models).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-flux")
    parser.add_argument("--pipeline", choices=("ppcache", "ppdiffusers"), default="ppcache",
                        help="pipeline classes: ppcache's or the installed PPDiffusers'")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prompts", help="prompt file (.txt, .jsonl, .csv; default: the bundled prompt set)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="outputs/teacache_calibrated.yaml")
    args = parser.parse_args(argv)

    import numpy as np
    import paddle
    import yaml

    import ppcache
    from ppcache.bench.calibration import TeaCacheRecorder, fit_polynomial, simulate_thresholds
    from ppcache.bench.prompts import load_prompts
    from ppcache.pipelines.prepare import model_section, prepare

    try:
        prompts = [prompt for prompt, _ in load_prompts(args.prompts)]
        pipe, _ = prepare(model_section(args.model, args.pipeline))
    except ppcache.PPCacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    recorder = TeaCacheRecorder()
    ppcache.apply_cache(pipe, recorder)
    traces = []
    try:
        for prompt in prompts:
            for seed in args.seeds:
                start = len(recorder.pairs)
                pipe(prompt=prompt, num_inference_steps=args.steps, generator=paddle.Generator().manual_seed(seed),
                     output_type="latent")
                traces.append([0.0] + [x for x, _ in recorder.pairs[start:]])
    finally:
        ppcache.remove_cache(pipe)
    x = [p[0] for p in recorder.pairs]
    y = [p[1] for p in recorder.pairs]
    coefficients, r2 = fit_polynomial(x, y)
    print(f"{len(x)} pairs from {len(prompts)} prompts x {len(args.seeds)} seeds, {args.steps} steps")
    print(f"fit: coefficients (highest power first) {np.round(coefficients, 6).tolist()}, R^2 = {r2:.4f}")
    print("| rel_l1_thresh | computed steps (compute fraction) |\n|---|---|")
    for threshold, fraction in simulate_thresholds(traces, coefficients, [0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0]).items():
        print(f"| {threshold} | {fraction:.3f} |")
    config = {"model": {"path": args.model}, "run": {"steps": args.steps},
              "cache": {"method": "teacache", "rel_l1_thresh": 0.4, "coefficients": [float(c) for c in coefficients]}}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write(f"# TeaCache calibrated for {args.model} at {args.steps} steps (R^2 = {r2:.4f}).\n")
        yaml.safe_dump(config, handle, sort_keys=False)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
