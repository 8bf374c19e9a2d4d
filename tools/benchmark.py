"""Speed and quality of cache configs on a model, beside the free baseline (fewer steps, no cache).

    python tools/benchmark.py --configs configs/sortblock.yaml configs/teablockcache.yaml ...
        [--model tiny-flux] [--steps 20] [--num-prompts 14] [--seeds 0 1] [--out outputs/benchmark]

Quality is SSIM/PSNR against the uncached image of the same prompt and seed; compute fraction is the block
work actually run over the full work; speed-up is the median uncached over median cached wall time.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", required=True)
    parser.add_argument("--model", default=None, help="default: the model named in the first config")
    parser.add_argument("--steps", type=int, default=None, help="default: the first config's run.steps")
    parser.add_argument("--num-prompts", type=int, default=14)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="outputs/benchmark")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import ppcache
    from ppcache.config import load_config, resolve_model_path
    from ppcache.evaluate import (baseline_ssim_at, evaluate_config, fewer_steps_baseline, format_table,
                                  references)
    from ppcache.pipelines.loading import load_pipeline
    from ppcache.tiny.dataset import default_prompts

    try:
        configs = [(os.path.splitext(os.path.basename(p))[0], load_config(p)) for p in args.configs]
        first = configs[0][1]
        model = args.model or first.model.path
        steps = args.steps or first.run.steps
        pipe = load_pipeline(resolve_model_path(model))
    except ppcache.PPCacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    prompts = default_prompts()
    prompts = prompts[:: max(1, len(prompts) // args.num_prompts)][: args.num_prompts]
    cases = [(p, s) for p in prompts for s in args.seeds]
    print(f"model {model}, {steps} steps, {len(prompts)} prompts x {len(args.seeds)} seeds", flush=True)
    refs = references(pipe, cases, steps)
    baseline = fewer_steps_baseline(pipe, cases, steps, refs)
    rows = []
    for name, config in configs:
        if config.cache.method == "none":
            continue
        row = evaluate_config(pipe, name, config.cache, cases, steps, refs)
        row.fewer_steps_ssim = baseline_ssim_at(baseline, row.compute_fraction)
        rows.append(row)
        verdict = "beats" if row.ssim > row.fewer_steps_ssim else "does NOT beat"
        print(f"{name}: compute {row.compute_fraction:.3f} SSIM {row.ssim:.4f} PSNR {row.psnr:.2f} "
              f"speed-up {row.speedup:.2f}x -- {verdict} fewer steps ({row.fewer_steps_ssim:.4f})", flush=True)
    print()
    print(format_table(rows + baseline))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as handle:
        json.dump({"model": model, "steps": steps, "prompts": prompts, "seeds": args.seeds,
                   "rows": [r.as_dict() for r in rows + baseline]}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
