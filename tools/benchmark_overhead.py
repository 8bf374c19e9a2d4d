"""Engine overhead on a FLUX-shaped timing model (random weights; hidden 512, 1024 image tokens).

    python tools/benchmark_overhead.py [--configs configs/sortblock.yaml ...] [--steps 20] [--repeats 3]

Prints, per config: compute fraction, measured speed-up over the stock transformer, the ideal speed-up
1 / compute fraction, and their ratio (target >= 0.9). Also the cost of caching applied with every block
computed (target: at most 2% slower than the stock model).
"""
import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+",
                        default=sorted(p for p in glob.glob(os.path.join(root, "configs", "*.yaml"))
                                       if not p.endswith("baseline.yaml")))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=1024, help="image tokens (a square grid)")
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import ppcache
    from ppcache.bench.timing_model import TimingRun

    run = TimingRun(args.steps, args.tokens)
    side = run.side
    run.generate(False)  # warm-up
    print(f"timing model: hidden 512, 3 double + 9 single blocks, {side * side} image + 64 text tokens, "
          f"{args.steps} steps, median of {args.repeats}", flush=True)
    every_block = ppcache.SortBlockConfig(timestep_start=0.0, timestep_end=0.0)
    stock, cached, fraction = run.compare(every_block, args.repeats)
    print(f"applied, every block computed: {cached / stock - 1:+.1%} vs stock (target <= +2%), "
          f"compute fraction {fraction:.3f}", flush=True)
    print("| config | compute fraction | speed-up | ideal | ratio (target >= 0.9) |")
    print("|---|---|---|---|---|")
    for path in args.configs:
        config = ppcache.load_config(path)
        stock, cached, fraction = run.compare(config.cache, args.repeats)
        ideal = 1 / fraction
        print(f"| {os.path.basename(path)} | {fraction:.3f} | {stock / cached:.2f}x | {ideal:.2f}x | "
              f"{stock / cached / ideal:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
