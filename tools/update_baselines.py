"""Re-measure and rewrite the SSIM baselines that CI guards (tests/baselines/ssim_baselines.json).

    python tools/update_baselines.py            # all shipped configs
    python tools/update_baselines.py --check    # print the comparison, change nothing

Run it only when a change in quality or compute is intended, and commit the new file with that change.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed file; write nothing")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    import ppcache  # noqa: F401
    from ppcache.bench import baselines
    from ppcache.pipelines.prepare import model_section, prepare

    pipe, _ = prepare(model_section("tiny-flux"))
    results = baselines.measure(pipe, baselines.shipped_configs(), args.steps)
    old = baselines.load_baselines()["configs"] if os.path.exists(baselines.BASELINE_FILE) else {}
    for name, row in results.items():
        before = old.get(name)
        was = f" (was SSIM {before['ssim']:.4f}, compute {before['compute_fraction']:.3f})" if before else " (new)"
        print(f"{name}: SSIM {row['ssim']:.4f} PSNR {row['psnr']:.2f} compute {row['compute_fraction']:.3f}{was}")
    if not args.check:
        baselines.write_baselines(results, "tiny-flux", args.steps)
        print(f"wrote {baselines.BASELINE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
