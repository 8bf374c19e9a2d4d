"""Sequence parallelism on the FLUX-shaped timing model: wall time of 1 vs N processes, uncached and cached.

    python tools/benchmark_parallel.py [--ranks 2] [--configs configs/dbcache.yaml ...] [--steps 20] [--tokens 1024]

Runs the single-process timings here, then launches N ranks of this script (python -m paddle.distributed.launch,
gloo on CPU, one thread per process as here) and prints, in one table: seconds per generation for 1 and N
processes, the speed-up of N over 1, and the share of the N-rank wall time spent in the attention all-gathers and
in the indicator all-reduces (the cache decisions). Random weights: timing only.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DEFAULT_CONFIGS = ["dbcache", "teacache", "sortblock", "taylorseer"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--configs", nargs="+",
                        default=[os.path.join(ROOT, "configs", f"{name}.yaml") for name in DEFAULT_CONFIGS])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=1024, help="image tokens (a square grid)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a rank's JSON output (set by the launch)
    args = parser.parse_args(argv)
    missing = [p for p in args.configs if not os.path.exists(p)]
    if missing:
        parser.error(f"config not found: {missing[0]}")
    if args.ranks < 2:
        parser.error(f"--ranks must be at least 2, got {args.ranks}")
    return args


def measure(args, group=None):
    """{label: (seconds, compute fraction, gather seconds, reduce seconds)} for uncached and every config."""
    import statistics

    import paddle

    import ppcache
    from ppcache.bench.timing_model import TimingRun

    paddle.base.core.set_num_threads(1)
    run = TimingRun(args.steps, args.tokens)
    if group is not None:
        ppcache.enable_sequence_parallel(run.model, group)
    run.generate(False)  # warm-up
    results = {}
    for label, path in [("uncached", None)] + [(os.path.basename(p), p) for p in args.configs]:
        seconds, collective = [], None
        for _ in range(args.repeats):
            if path:
                ppcache.apply_cache(run.model, ppcache.load_config(path).cache)
            sp = run.model.sequence_parallel
            before = dict(sp.seconds) if sp else None
            seconds.append(run.generate(path is not None)[0])
            if sp:
                collective = {k: sp.seconds[k] - before[k] for k in before}
            fraction = ppcache.summary(run.model)["compute_fraction"] if path else 1.0
            ppcache.remove_cache(run.model)
        collective = collective or {"gather": 0.0, "reduce": 0.0}
        results[label] = (statistics.median(seconds), fraction, collective["gather"], collective["reduce"])
    return results


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.worker:
        import ppcache.parallel  # noqa: F401
        import paddle.distributed as dist

        results = measure(args, args.ranks)
        if dist.get_rank() == 0:
            with open(args.worker, "w") as handle:
                json.dump(results, handle)
        return 0
    single = measure(args)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rank0.json")
        command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(args.ranks),
                   "--log_dir", os.path.join(tmp, "log"), os.path.abspath(__file__), "--worker", out,
                   "--ranks", str(args.ranks), "--steps", str(args.steps), "--tokens", str(args.tokens),
                   "--repeats", str(args.repeats), "--configs", *args.configs]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(out):
            log = os.path.join(tmp, "log", "workerlog.0")
            tail = open(log).read()[-2000:] if os.path.exists(log) else done.stderr[-2000:]
            print(f"error: the {args.ranks}-rank run failed:\n{tail}", file=sys.stderr)
            return 2
        with open(out) as handle:
            parallel = json.load(handle)
    side = int(args.tokens ** 0.5)
    print(f"timing model: hidden 512, 3 double + 9 single blocks, {side * side} image + 64 text tokens, "
          f"{args.steps} steps, 1 thread per process, median of {args.repeats}")
    print(f"| run | compute fraction | 1 process s | {args.ranks} ranks s | speed-up | all-gather share | "
          "indicator all-reduce share |")
    print("|---|---|---|---|---|---|---|")
    for label, (seconds, fraction, _, _) in single.items():
        p_seconds, _, gather, reduce = parallel[label]
        print(f"| {label} | {fraction:.3f} | {seconds:.2f} | {p_seconds:.2f} | {seconds / p_seconds:.2f}x | "
              f"{gather / p_seconds:.1%} | {reduce / p_seconds:.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
