"""ECAD schedule search (arXiv 2506.15682): NSGA-II over cache schedules of a pipeline, quality (mean SSIM
against the uncached images of calibration prompts) against compute, checkpointed every generation.

    python tools/search_schedule.py --config examples/ecad_search.yaml [--resume]

Writes to the config's `out` directory: checkpoint.pkl, front/cf<fraction>.json (the final Pareto front),
front.png (the front of every generation), schedule_{fast,balanced,quality}.json and a ready-to-run
schedule_{fast,balanced,quality}.yaml (method: schedule) for each pick. Needs the `search` extra (pymoo,
matplotlib). Searches cost population x generations x prompts x seeds generations of images: keep them small on CPU.

Under `python -m paddle.distributed.launch --nproc_per_node N tools/search_schedule.py --config ...` each rank
evaluates every N-th candidate; they exchange results through files in <out>/shards (ppcache.search.candidate_shards).
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def plot_history(history, path, cost_label):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    colors = plt.cm.viridis([i / max(1, len(history) - 1) for i in range(len(history))])
    for entry, color in zip(history, colors):
        F = entry["F"]
        if len(F):
            ax.plot(F[:, 1], 1 - F[:, 0], "o-", color=color, label=f"gen {entry['generation']}", markersize=3)
    ax.set_xlabel(cost_label)
    ax.set_ylabel("SSIM vs. uncached")
    ax.set_title("ECAD search: Pareto front per generation")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def describe(F, records, X):
    parts = []
    for x, (f1, f2) in zip(X, F):
        fraction = records.get(x.tobytes(), {}).get("compute_fraction", f2)
        parts.append(f"({fraction:.3f}, {1 - f1:.4f})")
    return " ".join(parts)


def write_results(cfg, search, objective):
    import yaml

    from ppcache.search import pick

    X, F = search.front()
    front_dir = os.path.join(cfg.out, "front")
    shutil.rmtree(front_dir, ignore_errors=True)
    os.makedirs(front_dir)
    paths = []
    for x, (f1, f2) in zip(X, F):
        if x.tobytes() not in objective.records:  # evaluated before a --resume: measure it again
            objective(x)
        record = objective.records[x.tobytes()]
        fraction = record.get("compute_fraction", float(x.mean()))
        name = f"cf{fraction:.2f}"
        path, k = os.path.join(front_dir, name + ".json"), 1
        while path in paths:
            k += 1
            path = os.path.join(front_dir, f"{name}_{k}.json")
        schedule = objective.schedule(x, name=name)
        schedule.config.update({"model": cfg.model, "steps": cfg.steps})
        schedule.metrics.update({"ssim": 1 - float(f1), "objective_cost": float(f2), **record})
        schedule.save(path)
        paths.append(path)
    picks = {}
    if len(X):
        for label, index in pick(F, cfg.min_quality).items():
            target = os.path.join(cfg.out, f"schedule_{label}.json")
            shutil.copyfile(paths[index], target)
            config = {"model": {"path": cfg.model},
                      "run": {"steps": cfg.steps, "height": cfg.height, "width": cfg.width,
                              "output": os.path.join(cfg.out, f"schedule_{label}.png")},
                      "cache": {"method": "schedule", "path": os.path.abspath(target)}}
            with open(os.path.join(cfg.out, f"schedule_{label}.yaml"), "w") as handle:
                handle.write(f"# ECAD pick '{label}': SSIM {1 - F[index, 0]:.4f}, cost {F[index, 1]:.4g} "
                             f"({cfg.cost}); from {os.path.basename(paths[index])}\n")
                yaml.safe_dump(config, handle, sort_keys=False)
            picks[label] = paths[index]
    return paths, picks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="search YAML (see examples/ecad_search.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pkl")
    args = parser.parse_args(argv)

    import ppcache  # noqa: F401  (before paddle)
    from ppcache.errors import ConfigError, PPCacheError

    from ppcache.config import load_config

    try:
        from ppcache.search import (NSGASearch, PipelineObjective, evaluator, heuristic_seeds, load_search_config,
                                    model_components)
        cfg = load_search_config(args.config)
        compared = {path: load_config(path) for path in cfg.compare}  # fail now, not after the search
        checkpoint = os.path.join(cfg.out, "checkpoint.pkl")
        if args.resume and not os.path.exists(checkpoint):
            raise ConfigError(f"--resume: no checkpoint at {checkpoint}")
    except PPCacheError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from ppcache.pipelines.prepare import model_section, prepare
    from ppcache.bench.prompts import bundled_prompts

    os.makedirs(cfg.out, exist_ok=True)
    pipe, _ = prepare(model_section(cfg.model, cfg.pipeline))
    components = model_components(pipe)
    prompts = bundled_prompts()[:cfg.prompts]
    cases = [(prompt, seed) for prompt in prompts for seed in cfg.seeds]
    objective = PipelineObjective(pipe, components, cases, cfg.steps, cost=cfg.cost, height=cfg.height,
                                  width=cfg.width)
    n_var = cfg.steps * sum(len(c) for c in components)
    if args.resume:
        search = NSGASearch.resume(checkpoint, generations=cfg.generations)
        if search.n_var != n_var:
            print(f"error: {checkpoint} searches {search.n_var} bits; this config needs {n_var}", file=sys.stderr)
            return 2
        print(f"resumed {checkpoint} at generation {search.generation}/{search.generations}")
    else:
        seeds = heuristic_seeds(components, cfg.steps, cfg.population, seed=cfg.seed)
        try:
            search = NSGASearch(n_var, cfg.population, cfg.generations, cfg.mutation, cfg.crossover_points,
                                cfg.crossover_prob, cfg.seed, initial=seeds, checkpoint=checkpoint)
        except ConfigError as error:
            print(f"error: {args.config}: {error}", file=sys.stderr)
            return 2
    from ppcache.bench.rank_shards import rank_and_world

    rank, world = rank_and_world()
    if rank:
        search.checkpoint = None  # rank 0 alone writes the checkpoint and the results
    print(f"search: {len(components)} blocks x {cfg.steps} steps = {n_var} bits, population {cfg.population}, "
          f"{len(cases)} calibration images per candidate" + (f", rank {rank} of {world}" if world > 1 else ""))
    cost_label = "compute fraction" if cfg.cost == "compute_fraction" else "MACs"
    from tqdm.auto import tqdm

    bar = tqdm(total=(search.generations - search.generation) * -(-cfg.population // world), desc="ECAD search",
               unit="candidate", disable=rank > 0 or not sys.stderr.isatty())

    def tracked(genome):
        result = objective(genome)
        bar.update(1)
        return result

    if world > 1:
        from ppcache.search.candidate_shards import sharded_evaluator

        evaluate = sharded_evaluator(tracked, os.path.join(cfg.out, "shards"), rank, world, objective.records)
    else:
        evaluate = evaluator(tracked)
    while not search.done:
        start = time.perf_counter()
        X, F = search.step(evaluate)
        front = describe(F, objective.records, X)
        bar.set_postfix_str(f"gen {search.generation} front {front}")
        bar.write(f"generation {search.generation}/{search.generations} ({time.perf_counter() - start:.1f} s): "
                  f"front (compute fraction, SSIM) {front}")
        if rank == 0:
            plot_history(search.history, os.path.join(cfg.out, "front.png"), cost_label)
    bar.close()
    if rank:
        return 0
    paths, picks = write_results(cfg, search, objective)
    print(f"wrote {len(paths)} front schedules to {os.path.join(cfg.out, 'front')}")
    for label, path in picks.items():
        print(f"  {label}: {os.path.basename(path)} -> schedule_{label}.json / schedule_{label}.yaml")
    report_targets(cfg, pipe, cases, paths, picks, compared, objective.references)
    return 0


def report_targets(cfg, pipe, cases, front_paths, picks, compared, references):
    """Prints and writes (targets.json, transfer.json) the front against the compared configs and the
    fewer-steps baseline on the calibration cases, and the picks run at the transfer setting."""
    import json

    from ppcache.cache_schedule import CacheSchedule
    from ppcache.search.targets import Point, Setting, target_report, transfer_rows

    front = []
    for path in front_paths:
        metrics = CacheSchedule.load(path).metrics
        front.append(Point(os.path.basename(path), metrics["compute_fraction"], metrics["ssim"]))
    if cfg.compare:
        setting = Setting(pipe, cases, cfg.steps, cfg.height, cfg.width, references)
        measured = [setting.measure(os.path.splitext(os.path.basename(p))[0], config.cache)
                    for p, config in compared.items()]
        lines, summary = target_report(front, measured, setting.fewer_steps())
        print(f"targets on the {len(cases)} calibration images, {cfg.steps} steps:")
        print("\n".join(lines))
        with open(os.path.join(cfg.out, "targets.json"), "w") as handle:
            json.dump({"summary": summary, "references": [vars(p) for p in measured],
                       "front": [vars(p) for p in front]}, handle, indent=2)
    transfer = (cfg.transfer_steps or cfg.steps, cfg.transfer_height or cfg.height, cfg.transfer_width or cfg.width)
    if picks and transfer != (cfg.steps, cfg.height, cfg.width):
        steps, height, width = transfer
        rows = transfer_rows(Setting(pipe, cases, steps, height, width), picks)
        searched = {p.name: p for p in front}
        print(f"transfer: searched at {cfg.steps} steps {cfg.height}x{cfg.width}, run at {steps} steps "
              f"{height}x{width}:")
        for row in rows:
            origin = searched[os.path.basename(row["schedule"])]
            row["searched"] = {"compute_fraction": origin.compute_fraction, "ssim": origin.ssim}
            print(f"  {row['pick']}: searched cf {origin.compute_fraction:.3f} SSIM {origin.ssim:.4f} -> "
                  f"cf {row['compute_fraction']:.3f} SSIM {row['ssim']:.4f} (fewer steps at that compute "
                  f"{'not measured' if row['fewer_steps_ssim'] is None else format(row['fewer_steps_ssim'], '.4f')})")
        with open(os.path.join(cfg.out, "transfer.json"), "w") as handle:
            json.dump({"steps": steps, "height": height, "width": width, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    sys.exit(main())
