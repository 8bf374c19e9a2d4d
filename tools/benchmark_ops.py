"""Fused ppcache ops against eager Paddle: per-op time and peak memory, and a whole cached generation.

    python tools/benchmark_ops.py [--repeats 10] [--steps 20] [--gen-repeats 3] [--threads N] [--skip-generation]

Per op (float32, shapes [1, 4096, 3072] and [2, 1024, 3072]): median wall time of eager Paddle (the fallback)
and of the fused op, the speed-up, and peak memory. Peak memory is Paddle's own host-allocator statistic
(paddle.base.core.host_memory_stat_peak_value("Allocated", 0)), reset before each call: the peak bytes
allocated during the call above what was live before it, i.e. the output plus every temporary. The fused
kernels allocate through the same allocator, so both columns count the same things.

Whole generation: the FLUX-shaped timing model of tools/benchmark_overhead.py (random weights, hidden 512,
1024 image + 64 text tokens, 12 blocks), one cached generation per config with the ops on eager Paddle and the fused
kernels, interleaved; prints the median wall-clock times and their ratio.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


SHAPES = ([1, 4096, 3072], [2, 1024, 3072])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per op and implementation")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=1024, help="image tokens of the timing model")
    parser.add_argument("--gen-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="OpenMP threads of the fused kernels (sets PPCACHE_OPS_THREADS; default: OMP_NUM_THREADS, "
                             "which Paddle sets to 1)")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--skip-ops", action="store_true")
    return parser.parse_args(argv)


def op_cases(paddle, ops, fallback, shape):
    """(name, eager callable, fused callable) for one shape; inputs are built once and shared."""
    def t(seed):
        paddle.seed(seed)
        return paddle.randn(shape)

    base, f0, f1, f2, value = t(1), t(2), t(3), t(4), t(5)
    c1, c2 = [1.0, 2.0], [1.0, 2.0, 2.0]
    channels = shape[-1] // 8
    # ladders: eager builds new factor tensors; fused rewrites the ladder's own F_1.. buffers in place
    ladder1, ladder2 = [f0, f1.clone()], [f0, f1.clone(), f2.clone()]
    return [
        ("predict+add order 1", lambda: fallback.taylor_eval_add(base, [f0, f1], c1),
         lambda: ops.taylor_eval_add(base, [f0, f1], c1)),
        ("predict+add order 2", lambda: fallback.taylor_eval_add(base, [f0, f1, f2], c2),
         lambda: ops.taylor_eval_add(base, [f0, f1, f2], c2)),
        ("divided-diff update order 1", lambda: fallback.divided_differences(value, [f0, f1], 2.0, 1),
         lambda: ops.ladder_update(ladder1, value, 2.0, 1)),
        ("divided-diff update order 2", lambda: fallback.divided_differences(value, [f0, f1, f2], 2.0, 2),
         lambda: ops.ladder_update(ladder2, value, 2.0, 2)),
        ("rel-L1 per sample", lambda: fallback.rel_l1(value, base), lambda: ops.rel_l1(value, base)),
        (f"cosine first {channels} ch", lambda: fallback.channel_cosine(value, base, channels),
         lambda: ops.channel_cosine(value, base, channels)),
    ]


def measure(fn, repeats, core):
    """Median seconds over `repeats` calls, and peak allocator bytes above the live bytes before one call."""
    fn()
    fn()  # warm-up (first-touch of the allocator's pages)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        float(out[-1].flatten()[0]) if isinstance(out, list) else float(out.flatten()[0])  # result is ready
        times.append(time.perf_counter() - start)
        del out
    before = core.host_memory_stat_current_value("Allocated", 0)
    core.host_memory_stat_reset_peak_value("Allocated", 0)
    out = fn()
    peak = core.host_memory_stat_peak_value("Allocated", 0) - before
    del out
    return statistics.median(times), peak


def mib(n):
    return f"{n / 2**20:.1f} MiB"


def bench_ops(args, paddle, ops, fallback, core):
    print(f"ops: float32, median of {args.repeats}; peak = Paddle host-allocator peak above live bytes "
          f"(output + temporaries)", flush=True)
    print("| op | shape | eager ms | fused ms | speed-up | eager peak | fused peak |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for shape in SHAPES:
        for name, eager, fused in op_cases(paddle, ops, fallback, shape):
            eager_s, eager_peak = measure(eager, args.repeats, core)
            fused_s, fused_peak = measure(fused, args.repeats, core)
            rows.append((name, shape, eager_s / fused_s, eager_peak, fused_peak))
            print(f"| {name} | {shape} | {eager_s * 1e3:.2f} | {fused_s * 1e3:.2f} | {eager_s / fused_s:.2f}x | "
                  f"{mib(eager_peak)} | {mib(fused_peak)} |", flush=True)
    worst = min(r[2] for r in rows)
    lower = all(r[4] < r[3] for r in rows)
    print(f"slowest speed-up {worst:.2f}x (target >= 2x); fused peak lower everywhere: {lower}", flush=True)


def bench_generation(args, paddle, ops, ppcache):
    from ppcache.bench.timing_model import TIMING_MODEL, TimingRun

    run = TimingRun(args.steps, args.tokens)
    model, side = run.model, run.side

    def generate():
        return run.generate(cached=True)

    blocks = TIMING_MODEL["num_layers"] + TIMING_MODEL["num_single_layers"]
    print(f"\nwhole cached generation: timing model (hidden 512, {blocks} blocks, {side * side} image + 64 text "
          f"tokens), {args.steps} steps, median of {args.gen_repeats}, eager and fused runs interleaved", flush=True)
    print("| config | compute fraction | eager ops s | fused ops s | wall-clock ratio fused/eager | max abs diff |")
    print("|---|---|---|---|---|---|")
    import numpy as np

    for label, config in (("SortBlockConfig()", ppcache.SortBlockConfig()),
                          ("FirstBlockTaylorConfig()", ppcache.FirstBlockTaylorConfig())):
        ppcache.apply_cache(model, config)
        times = {"eager": [], "fused": []}
        outputs, fractions = {}, {}
        for name in ("eager", "fused"):  # warm-up
            ops.set_backend(name)
            generate()
        for _ in range(args.gen_repeats):
            for name in ("eager", "fused"):
                ops.set_backend(name)
                seconds, outputs[name] = generate()
                times[name].append(seconds)
                fractions[name] = ppcache.summary(model)["compute_fraction"]
        ppcache.remove_cache(model)
        ops.set_backend(None)
        eager, fused = statistics.median(times["eager"]), statistics.median(times["fused"])
        assert fractions["eager"] == fractions["fused"], fractions
        diff = float(np.abs(outputs["fused"] - outputs["eager"]).max())
        print(f"| {label} | {fractions['fused']:.3f} | {eager:.3f} | {fused:.3f} | {fused / eager:.3f} "
              f"({(fused / eager - 1):+.1%}) | {diff:.1e} |", flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        os.environ["PPCACHE_OPS_THREADS"] = str(args.threads)
    import ppcache  # first: quiets Paddle

    import paddle
    from paddle.base import core

    from ppcache import ops
    from ppcache.ops import fallback

    ops.set_backend("fused")
    assert ops.backend() == "fused", ops.build.error()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = os.environ.get("PPCACHE_OPS_THREADS") or os.environ.get("OMP_NUM_THREADS") or cpus
    print(f"paddle {paddle.__version__}, {cpus} CPUs; fused kernels: {threads} OpenMP thread(s); eager Paddle: "
          f"its CPU kernels as shipped (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})", flush=True)
    if not args.skip_ops:
        with paddle.no_grad():
            bench_ops(args, paddle, ops, fallback, core)
    if not args.skip_generation:
        bench_generation(args, paddle, ops, ppcache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
