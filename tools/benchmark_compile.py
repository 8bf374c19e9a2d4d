"""Eager vs compiled (paddle.jit.to_static) block math on the FLUX-shaped timing model, uncached and cached.

    python tools/benchmark_compile.py [--configs configs/dbcache.yaml ...] [--steps 20] [--tokens 1024] [--repeats 3]

Prints, in one run, seconds per generation eager and compiled for the stock model and each config, the
compiled speed-up, and the largest difference between the two final latents. Block-level methods only (a method
that caches parts of blocks cannot run on compiled blocks). Random weights: timing only.
"""
import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DEFAULT_CONFIGS = ["dbcache", "teacache", "sortblock", "fbcache"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+",
                        default=[os.path.join(ROOT, "configs", f"{name}.yaml") for name in DEFAULT_CONFIGS])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=1024, help="image tokens (a square grid)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    missing = [p for p in args.configs if not os.path.exists(p)]
    if missing:
        parser.error(f"config not found: {missing[0]}")
    return args


def timed(run, cache, repeats):
    """(median seconds, final latents, compute fraction) of `repeats` generations with `cache` (None: stock)."""
    import ppcache

    seconds = []
    for _ in range(repeats):
        if cache is not None:
            ppcache.apply_cache(run.model, cache)
        elapsed, latents = run.generate(cache is not None)
        seconds.append(elapsed)
        fraction = ppcache.summary(run.model)["compute_fraction"] if cache is not None else 1.0
        ppcache.remove_cache(run.model)
    return statistics.median(seconds), latents, fraction


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    import ppcache
    from ppcache.compiled import check_block_level
    from ppcache.policies import policy_for
    from ppcache.bench.timing_model import TimingRun

    run = TimingRun(args.steps, args.tokens)
    caches = [("stock", None)] + [(os.path.basename(p), ppcache.load_config(p).cache) for p in args.configs]
    try:
        for _, cache in caches:
            if cache is not None:
                check_block_level(policy_for(cache))
    except ppcache.PPCacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    ppcache.compile_blocks(run.model)
    run.generate(False)  # traces every block once
    ppcache.uncompile_blocks(run.model)
    run.generate(False)  # eager warm-up
    side = int(args.tokens ** 0.5)
    print(f"timing model: hidden 512, 3 double + 9 single blocks, {side * side} image + 64 text tokens, "
          f"{args.steps} steps, median of {args.repeats}")
    print("| run | compute fraction | eager s | compiled s | compiled speed-up | max abs diff |")
    print("|---|---|---|---|---|---|")
    for label, cache in caches:
        eager, eager_out, fraction = timed(run, cache, args.repeats)
        ppcache.compile_blocks(run.model)
        compiled, compiled_out, _ = timed(run, cache, args.repeats)
        ppcache.uncompile_blocks(run.model)
        print(f"| {label} | {fraction:.3f} | {eager:.2f} | {compiled:.2f} | {eager / compiled:.2f}x | "
              f"{float(np.abs(eager_out - compiled_out).max()):.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
