"""Speed and quality of cache configs on a model, beside the free baseline (fewer steps, no cache).

    python tools/benchmark.py --configs configs/*.yaml [--prompts FILE] [--num-prompts N] [--steps N]
        [--seeds 0 1] [--model PATH] [--pipeline ppcache|ppdiffusers] [--out DIR] [--repeats N] [--overhead]
        [--peers] [--frontier 0.35 0.5 0.65] [--no-progress]

For every config and every prompt x seed: SSIM / PSNR against the uncached image of the same prompt and seed
(generated once, kept in OUT/refs), compute fraction and block MACs, cache memory, steps and blocks computed;
wall-clock speed-up from uncached and cached runs interleaved --repeats times (median, min, max). The baseline
series "fewer steps, no cache" is always included. Results are kept per image under OUT, so an interrupted run
resumes where it stopped. Writes OUT/results.csv, results.json, results.md, frontier.csv, pareto.png and
contact_sheet.png. The frontier report gives, for each compute budget, the best config of ppcache, of each peer
framework and of fewer steps whose compute fraction is within the budget.

Prompt files: .txt (one prompt a line, # comments), .jsonl ({"prompt": ..., "seed": ...} a line) or .csv (a
prompt or caption column); default: the bundled set. Several processes or machines (shared OUT):

    python -m paddle.distributed.launch --nproc_per_node 2 tools/benchmark.py --configs configs/*.yaml

Configs with `parallel: {sequence: N}` (all the same N, launched with N processes) run every generation
sequence-parallel across the ranks instead: each rank keeps its own store (rank 0 in OUT, the others under
OUT/sequence-ranks/), the ranks agree on what is already done, and rank 0 reports.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def budget(text):
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"a compute budget is a fraction in (0, 1], got {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", required=True, help="ppcache YAML configs (method none is skipped)")
    parser.add_argument("--prompts", default=None, help="prompt file (.txt, .jsonl, .csv); default: the bundled set")
    parser.add_argument("--num-prompts", type=positive, default=None, help="use this many prompts, evenly spaced")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds for prompts without their own")
    parser.add_argument("--steps", type=positive, default=None, help="default: the first config's run.steps")
    parser.add_argument("--model", default=None, help="default: the model named in the first config")
    parser.add_argument("--pipeline", choices=("ppcache", "ppdiffusers"), default=None,
                        help="pipeline classes: ppcache's or the installed PPDiffusers' (default: the first "
                             "config's model.pipeline)")
    parser.add_argument("--out", default="outputs/benchmark")
    parser.add_argument("--repeats", type=positive, default=3, help="interleaved uncached/cached timing pairs")
    parser.add_argument("--overhead", action="store_true",
                        help="also measure speed-up / (1 / compute fraction) on the FLUX-shaped timing model (slow)")
    parser.add_argument("--overhead-tokens", type=positive, default=1024, help="timing model image tokens")
    parser.add_argument("--peers", action="store_true", help="add cache-dit and diffusers points (extra `parity`)")
    parser.add_argument("--frontier", type=budget, nargs="+", default=None, metavar="BUDGET",
                        help="compute budgets of the frontier report: per budget, the best config of each framework "
                             "and of fewer steps with compute fraction <= budget (default: 0.35 0.5 0.65)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def peer_rows(model_dir, cases, steps, references, height, width, repeats, pipe, configs):
    """The peers' rows, or [] with one line saying why (the `parity` extra is optional). diffusers' MagCache runs on
    the magnitude curve of the first benchmarked MagCache config (the same curve as ppcache's), else on ppcache's
    calibration of the first case."""
    from ppcache.errors import PPCacheError

    calibration = next((config.cache.calibration for _, config in configs if config.cache.method == "magcache"),
                       None)
    try:
        from ppcache.bench.peers import peer_rows as run_peers

        return run_peers(model_dir, cases, steps, references, height, width, repeats=repeats, ppcache_pipe=pipe,
                         magcache_calibration=calibration)
    except (ImportError, PPCacheError) as error:
        hint = "" if "pip install" in str(error) else ' (pip install -e ".[parity]")'
        print(f"peers skipped: {error}{hint}", flush=True)
        return []


def write_plots(out, rows, sheet, title):
    """pareto.png and contact_sheet.png; [] with one line when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plots skipped: matplotlib is not installed (pip install matplotlib)")
        return []
    from ppcache.bench.plots import contact_sheet, pareto_plot

    references, columns, labels = sheet
    paths = [os.path.join(out, "pareto.png"), os.path.join(out, "contact_sheet.png")]
    pareto_plot(rows, paths[0], title)
    contact_sheet(references, columns, paths[1], labels)
    return paths


def sequence_size(configs):
    """The ranks the configs' generations split across (parallel.sequence, the same in every config)."""
    from ppcache.errors import ConfigError

    sizes = {config.parallel.sequence for _, config in configs}
    if len(sizes) > 1:
        raise ConfigError(f"the configs ask for different parallel.sequence sizes {sorted(sizes)}: benchmark "
                          "configs of one size together")
    return sizes.pop()


def check_compiled(configs):
    """Compiled blocks (the first config's model.compile) take block-level methods only: refused before any work."""
    from ppcache.compiled import check_block_level
    from ppcache.policies import policy_for

    if configs[0][1].model.compile:
        for _, config in configs:
            if config.cache.method != "none":
                check_block_level(policy_for(config.cache))


def agreement(group):
    """Whether every rank has a result on disk (one MIN all-reduce)."""
    import paddle

    return lambda flag: bool(group.all_true(paddle.to_tensor([flag])).item())


def main(argv=None):
    args = parse_args(argv)
    import ppcache
    from ppcache.bench import prompts as prompt_sets
    from ppcache.bench.report import (FRONTIER_BUDGETS, FRONTIER_COLUMNS, compare, environment, frontier,
                                      frontier_table, markdown, normalized, table, write_results)
    from ppcache.bench.runner import Benchmark, cache_variants, fewer_steps
    from ppcache.bench.rank_shards import rank_and_world
    from ppcache.bench.store import Store
    from ppcache.config import load_config, resolve_model_path
    from ppcache.parallel.enable import check_sequence_tokens
    from ppcache.pipelines.prepare import prepare

    rank, world = rank_and_world()
    try:
        configs = [(os.path.splitext(os.path.basename(p))[0], load_config(p)) for p in args.configs]
        entries = prompt_sets.load_prompts(args.prompts)
        first = configs[0][1]
        model_dir = resolve_model_path(args.model or first.model.path)
        steps, height, width = args.steps or first.run.steps, first.run.height, first.run.width
        check_compiled(configs)
        pipe, sequence = prepare(first, sequence_size(configs), path=args.model, pipeline=args.pipeline)
        check_sequence_tokens(pipe, height, width)
    except ppcache.PPCacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cases = prompt_sets.cases(entries, args.seeds, args.num_prompts)
    variants = fewer_steps(steps) + cache_variants(configs, steps)
    prompts_name = args.prompts or "bundled " + os.path.relpath(prompt_sets.BUNDLED_PROMPTS)
    model_settings = dict(dtype=first.model.dtype, compiled=first.model.compile)
    settings = dict(model=args.model or first.model.path, pipeline=args.pipeline or first.model.pipeline,
                    **model_settings, steps=steps, height=height, width=width,
                    prompts=prompts_name, num_prompts=len({p for p, _ in cases}), seeds=sorted({s for _, s in cases}),
                    cases=len(cases), repeats=args.repeats, world_size=world,
                    sequence_parallel=sequence.size if sequence is not None else 1,
                    overhead_tokens=args.overhead_tokens if args.overhead else None)
    if rank == 0:
        print(f"model {settings['model']} ({settings['pipeline']} pipeline), {steps} steps, {height}x{width}, {settings['num_prompts']} prompts "
              f"({prompts_name}) x seeds {settings['seeds']} = {len(cases)} images per config, "
              f"{len(variants)} variants, timing {args.repeats} pairs, {world} process(es)"
              f"{' sequence-parallel' if sequence is not None else ''}, out {args.out}",
              flush=True)
    if sequence is None:
        store, share = Store(args.out, model_dir, height, width, **model_settings), (rank, world)
    else:  # every rank runs every generation, on its own store
        out = args.out if rank == 0 else os.path.join(args.out, "sequence-ranks", str(rank))
        store, share = Store(out, model_dir, height, width, agree=agreement(sequence), **model_settings), (0, 1)
    bench = Benchmark(pipe, store, variants, cases, steps, height, width, args.repeats, *share,
                      overhead_tokens=args.overhead_tokens if args.overhead else None,
                      progress=rank == 0 and not args.no_progress)
    bench.run()
    store.agree = None  # the generations are done: rank 0 reports alone from its own store
    if rank != 0:
        return 0
    rows = bench.merge()
    sheet = bench.sheet()
    if args.peers:
        peers = peer_rows(model_dir, cases, steps, bench.references(), height, width, args.repeats, pipe, configs)
        rows += peers
        sheet[1].extend((row["name"], row["images"][:len(sheet[0])]) for row in peers if row.get("images"))
    rows = compare([normalized(row) for row in rows])
    points = frontier(rows, args.frontier or FRONTIER_BUDGETS)
    env = environment(**settings)
    paths = write_results(args.out, rows, env, render=lambda rows, env: markdown(rows, env, points))
    paths += write_results(args.out, points, env, name="frontier", columns=FRONTIER_COLUMNS,
                           render=lambda points, env: frontier_table(points))
    paths += write_plots(args.out, rows, sheet, f"{settings['model']}, {steps} steps, {len(cases)} images")
    print()
    print(table(rows))
    print()
    print(frontier_table(points))
    print()
    print("wrote " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
