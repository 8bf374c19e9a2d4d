"""Calibrate MagCache for a model: its magnitude-ratio curve from one (or a few) uncached generations, the compute
each threshold gives, and a ready-to-use config that holds the curve.

    python tools/calibrate_magcache.py [--model tiny-flux] [--pipeline ppcache|ppdiffusers] [--steps 20]
        [--height 32 --width 32] [--prompts FILE] [--num-prompts 1] [--seeds 0] [--threshold 0.06]
        [--max-skip-steps 2] [--retention-ratio 0.2] [--order 0] [--out outputs/magcache_calibrated.yaml]
        [--transfer-seeds 1 2 --transfer-prompts 8]

One sample is the paper's calibration: the curve barely depends on the prompt or seed. A run at another step count
resamples it. A config refuses a curve measured on a model of another family or block count: calibrate each model.
--transfer-seeds checks the first point: on other seeds (and --transfer-prompts prompts), MagCache on the written
curve against MagCache on a curve calibrated on each of those images itself.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

THRESHOLDS = (0.02, 0.04, 0.06, 0.1, 0.15, 0.2, 0.3, 0.5)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-flux", help="bundled name or a pipeline directory")
    parser.add_argument("--pipeline", choices=("ppcache", "ppdiffusers"), default="ppcache")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--prompts", help="prompt file (.txt, .jsonl, .csv; default: the bundled prompt set)")
    parser.add_argument("--num-prompts", type=int, default=1, help="calibration prompts, evenly spaced (default 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threshold", type=float, default=0.06, help="the threshold written into the config")
    parser.add_argument("--max-skip-steps", type=int, default=2)
    parser.add_argument("--retention-ratio", type=float, default=0.2)
    parser.add_argument("--order", type=int, default=0, help="0 reuses the residual (the paper), 1 extrapolates it")
    parser.add_argument("--transfer-seeds", type=int, nargs="+", default=None,
                        help="also measure how the curve transfers to these seeds")
    parser.add_argument("--transfer-prompts", type=int, default=8, help="prompts of the transfer check")
    parser.add_argument("--out", default="outputs/magcache_calibrated.yaml")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import yaml

    import ppcache
    from ppcache.bench.calibration import calibrate_magcache, magcache_transfer, simulate_magcache
    from ppcache.bench.prompts import cases, load_prompts
    from ppcache.config import build_cache_section
    from ppcache.pipelines.prepare import model_section, prepare

    try:
        if args.num_prompts < 1 or args.steps < 2:
            raise ppcache.ConfigError("--num-prompts must be >= 1 and --steps >= 2")
        cache = {"method": "magcache", "threshold": args.threshold, "max_skip_steps": args.max_skip_steps,
                 "retention_ratio": args.retention_ratio, "order": args.order}
        build_cache_section(cache)  # the settings are checked before any generation
        entries = load_prompts(args.prompts)
        calibration = cases(entries, args.seeds, args.num_prompts)
        pipe, _ = prepare(model_section(args.model, args.pipeline))
        curve = calibrate_magcache(pipe, calibration, args.steps, args.height, args.width)
    except ppcache.PPCacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"magnitude ratios of {len(calibration)} generation(s), {args.steps} steps, "
          f"{len(curve.ratios)} guidance branch(es):")
    for branch, row in enumerate(curve.ratios):
        print(f"  branch {branch}: " + " ".join(f"{r:.4f}" for r in row))
    print("| threshold | computed steps (compute fraction) |\n|---|---|")
    for threshold, fraction in simulate_magcache(curve, args.steps, THRESHOLDS, args.max_skip_steps,
                                                 args.retention_ratio).items():
        print(f"| {threshold} | {fraction:.3f} |")
    config = {"model": {"path": args.model, "pipeline": args.pipeline},
              "run": {"steps": args.steps, "height": args.height, "width": args.width},
              "cache": dict(cache, calibration=curve.to_mapping())}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(f"# MagCache calibrated for {args.model} at {args.steps} steps on {len(calibration)} "
                     "generation(s) (tools/calibrate_magcache.py).\n")
        yaml.safe_dump(config, handle, sort_keys=False, default_flow_style=None, width=120)
    print(f"wrote {args.out}")
    if args.transfer_seeds:
        report_transfer(magcache_transfer(pipe, build_cache_section(config["cache"]),
                                          cases(entries, args.transfer_seeds, args.transfer_prompts), args.steps,
                                          args.height, args.width))
    return 0


def report_transfer(rows):
    import numpy as np

    print("| prompt | seed | SSIM, written curve | SSIM, its own curve | compute (written / own) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['prompt']} | {r['seed']} | {r['transferred_ssim']:.4f} | {r['own_ssim']:.4f} | "
              f"{r['transferred_compute']:.3f} / {r['own_compute']:.3f} |")
    gap = [r["own_ssim"] - r["transferred_ssim"] for r in rows]
    print(f"{len(rows)} images: mean SSIM {np.mean([r['transferred_ssim'] for r in rows]):.4f} on the written curve, "
          f"{np.mean([r['own_ssim'] for r in rows]):.4f} on their own; own minus written: mean {np.mean(gap):+.4f}, "
          f"largest {max(gap, key=abs):+.4f}")


if __name__ == "__main__":
    sys.exit(main())
