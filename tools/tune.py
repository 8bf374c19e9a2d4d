"""The best cache config for a compute budget, on your model, settings and prompts.

    python tools/tune.py --budget 0.4 [--speedup 2.5] [--model PATH] [--steps N] [--height H --width W]
        [--prompts FILE] [--num-prompts N] [--seeds 0] [--holdout FILE] [--holdout-seeds 1 2]
        [--methods dbcache teacache ...] [--evaluations N] [--cap [FRACTION]] [--out DIR] [--no-progress]

For each candidate method (ppcache/bench/knobs.py), its knob is bisected (thresholds) or stepped (intervals) for
the setting whose mean compute fraction on the calibration images is at most the budget and closest to it; SSIM
and PSNR are measured against the uncached images (generated once, kept in OUT/refs). Each candidate's pick and
the fewer-steps baseline are then measured on held-out prompts and seeds: every 3rd prompt with --holdout-seeds,
or the prompts of --holdout FILE. A pick that does not beat fewer steps there is reported as such.

Writes OUT/tuned_<model>_<budget>.yaml (a ready config; its comments hold the settings and figures) and
OUT/tune_<model>_<budget>.{csv,json,md,png}. Every image's result is kept under OUT/records: a rerun, or a tune
for another budget in the same OUT, reuses them. Several processes or machines (shared OUT):

    python -m paddle.distributed.launch --nproc_per_node 2 tools/tune.py --budget 0.4
"""
import argparse
import inspect
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def at_least(low):
    def parse(text):
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def cap_value(text):
    """--cap's value: a fraction, or "budget" (--cap given alone)."""
    return text if text == "budget" else float(text)


def parse_args(argv=None):
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget", type=float, help="compute fraction in (0, 1], e.g. 0.4")
    budget.add_argument("--speedup", type=float, help="the budget as a speed-up: 2.5 means compute fraction 0.4")
    parser.add_argument("--model", default="tiny-flux",
                        help="bundled name (tiny-flux, tiny-sd3, tiny-pixart, tiny-wan) or a pipeline directory")
    parser.add_argument("--pipeline", choices=("ppcache", "ppdiffusers"), default="ppcache")
    parser.add_argument("--steps", type=at_least(2), default=20)
    parser.add_argument("--height", type=at_least(1), default=32)
    parser.add_argument("--width", type=at_least(1), default=32)
    parser.add_argument("--prompts", default=None, help="prompt file (.txt, .jsonl, .csv); default: the bundled set")
    parser.add_argument("--num-prompts", type=at_least(2), default=24,
                        help="use this many prompts of --prompts, evenly spaced (default 24: 16 calibration, 8 "
                             "held-out)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="calibration seeds")
    parser.add_argument("--holdout", default=None, help="held-out prompt file (default: every 3rd prompt)")
    parser.add_argument("--holdout-seeds", type=int, nargs="+", default=[1, 2], help="held-out seeds")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="candidates (default: all of ppcache/bench/knobs.py)")
    parser.add_argument("--evaluations", type=at_least(3), default=7, help="points measured per knob at most")
    parser.add_argument("--cap", type=cap_value, nargs="?", const="budget", default=None, metavar="FRACTION",
                        help="write max_compute_fraction (default: the budget) into the config, a hard cap at run "
                             "time for dynamic methods, and measure the pick with it on the held-out images")
    parser.add_argument("--out", default="outputs/tune")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def call_default(pipe, name):
    """The default of the pipeline's `name` argument (what the tune's generations used), or None."""
    parameter = inspect.signature(pipe.__call__).parameters.get(name)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def setup(args):
    """(budget, candidates, calibration cases, held-out cases, held-out source, pipeline, model dir); every
    problem is a PPCacheError, raised before anything is written."""
    from ppcache.bench import prompts as prompt_sets
    from ppcache.bench.tune import budget_from, candidates_from, split_entries
    from ppcache.config import resolve_model_path
    from ppcache.pipelines import model_section, prepare
    from ppcache.pipelines.run import check_resolution

    budget = budget_from(args.budget, args.speedup)
    candidates = candidates_from(args.methods)
    entries = prompt_sets.spaced(prompt_sets.load_prompts(args.prompts), args.num_prompts)
    if args.holdout:
        calibration, heldout, source = entries, prompt_sets.load_prompts(args.holdout), args.holdout
    else:
        (calibration, heldout), source = split_entries(entries), "every 3rd prompt"
    model_dir = resolve_model_path(args.model)
    pipe, _ = prepare(model_section(args.model, args.pipeline))
    check_resolution(pipe, args.height, args.width)
    return (budget, candidates, prompt_sets.cases(calibration, args.seeds),
            prompt_sets.cases(heldout, args.holdout_seeds), source, pipe, model_dir)


def main(argv=None):
    args = parse_args(argv)
    import ppcache
    from ppcache.bench import prompts as prompt_sets
    from ppcache.bench.report import environment
    from ppcache.bench.runner import Benchmark
    from ppcache.bench.rank_shards import rank_and_world
    from ppcache.bench.store import Store
    from ppcache.bench.tune import Tune, budget_from
    from ppcache.bench.tune_report import markdown, write_outputs
    from ppcache.config import BUNDLED_MODELS

    rank, world = rank_and_world()
    try:
        budget, candidates, calibration, heldout, source, pipe, model_dir = setup(args)
        cap = budget if args.cap == "budget" else None if args.cap is None else budget_from(args.cap, what="--cap")
    except ppcache.PPCacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bench = Benchmark(pipe, Store(args.out, model_dir, args.height, args.width), [], calibration + heldout,
                      args.steps, args.height, args.width, repeats=0, rank=rank, world=world, sheet_cases=0)
    tune = Tune(bench, budget, candidates, range(len(calibration)), range(len(calibration), len(bench.cases)),
                args.evaluations, cap=cap)
    if rank == 0:
        print(f"tune for compute fraction {budget:.3f}: model {args.model}, {args.steps} steps, "
              f"{args.height}x{args.width}, {len(calibration)} calibration and {len(heldout)} held-out images, "
              f"candidates {' '.join(candidates)}, {world} process(es), out {args.out}", flush=True)
    started = time.perf_counter()
    from tqdm.auto import tqdm

    with tqdm(total=tune.planned_images() // world, desc="tune", dynamic_ncols=True,
              disable=rank != 0 or args.no_progress) as bench.bar:
        result = tune.run()
        bench.bar.total = bench.bar.n  # the searches stopped early where they could
    if rank != 0:
        return 0
    if result.choice is None:
        print(f"error: {result.unreachable_message()}", file=sys.stderr)
        return 2
    prompts_name = args.prompts or "bundled " + os.path.relpath(prompt_sets.BUNDLED_PROMPTS)
    env = environment(
        budget=budget, model=args.model if args.model in BUNDLED_MODELS else os.path.abspath(args.model),
        pipeline=args.pipeline, steps=args.steps, height=args.height, width=args.width, prompts=prompts_name,
        calibration_prompts=len({p for p, _ in calibration}), calibration_seeds=sorted({s for _, s in calibration}),
        calibration_images=len(calibration), heldout_prompts=len({p for p, _ in heldout}),
        heldout_seeds=sorted({s for _, s in heldout}), heldout_images=len(heldout), heldout_source=source,
        calibration_cases=[list(case) for case in calibration], heldout_cases=[list(case) for case in heldout],
        candidates=list(candidates), evaluations=args.evaluations, cap=cap, world_size=world,
        guidance_scale=call_default(pipe, "guidance_scale"), wall_seconds=time.perf_counter() - started)
    paths, rows, env = write_outputs(args.out, result, env)
    print()
    print(markdown(rows, env).split("\n\n## ")[0])
    print()
    print("wrote " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
