"""Benchmark rows and outputs: one row per variant (cache config, fewer-steps baseline or peer), compared with
the fewer-steps baseline and the Pareto front, written as results.csv, results.json and results.md.

MACs are the engine's block-level estimate (ppcache/adapters), summed over the blocks actually run, per image:
a two-stream block costs 4·T·d² + 2·T²·d (attention: projections and scores over T = image + text tokens)
plus 8·T_img·d² + 8·T_txt·d² (the two MLPs); a FLUX single block 12·T·d² + 2·T²·d. Embeddings, norms, the
text encoders and the VAE are not counted.
"""
import csv
import datetime
import json
import math
import os
import platform
import statistics

import numpy as np

from .pareto import pareto_front
from .plots import FEWER_STEPS
from .store import atomic

COLUMNS = ["name", "framework", "method", "steps", "compute_fraction", "gmacs", "ssim", "ssim_min", "psnr",
           "temporal_ssim", "speedup", "speedup_min", "speedup_max", "fewer_steps_ssim", "beats_fewer_steps", "pareto",
           "cache_kib",
           "steps_computed", "blocks_computed", "blocks_predicted", "fallbacks", "timing_model_ratio", "cases"]
NAN = float("nan")


def summarize(name, method, steps, records, timing=None, overhead=None, framework="ppcache"):
    """A row from the per-case records of one variant, its timing record (None: no wall-clock columns) and
    optionally its overhead record."""
    def mean(key):
        return float(np.mean([r[key] for r in records]))

    ratios = [u / c for u, c in zip(timing["uncached_s"], timing["cached_s"])] if timing else [NAN]
    ratio = NAN
    if overhead is not None:  # measured speed-up over the ideal 1 / compute fraction
        ratio = overhead["stock_s"] / overhead["cached_s"] * overhead["compute_fraction"]
    # videos: the mean SSIM of the frame-to-frame differences (ppcache.bench.metrics.temporal_ssim)
    temporal = mean("temporal_ssim") if all("temporal_ssim" in r for r in records) else NAN
    return dict(name=name, framework=framework, method=method, steps=steps, compute_fraction=mean("compute_fraction"),
                gmacs=mean("macs") / 1e9, ssim=mean("ssim"), ssim_min=min(r["ssim"] for r in records),
                psnr=mean("psnr"), temporal_ssim=temporal, speedup=statistics.median(ratios), speedup_min=min(ratios),
                speedup_max=max(ratios), cache_kib=max(r["cache_bytes"] for r in records) / 1024,
                steps_computed=mean("steps_computed"), blocks_computed=mean("blocks_computed"),
                blocks_predicted=mean("blocks_predicted"), fallbacks=sum(r["fallbacks"] for r in records),
                timing_model_ratio=ratio, cases=len(records))


def normalized(row):
    """A row with every column (missing ones NaN / empty) and only scalar extras (a peer's images dropped)."""
    scalar = (str, int, float, bool, type(None))
    result = {column: row.get(column, NAN) for column in COLUMNS}
    result.update({k: v for k, v in row.items() if isinstance(v, scalar) and k not in result})
    return result


def fewer_steps_ssim(rows, fraction):
    """The fewer-steps SSIM at compute `fraction`: linear interpolation through the baseline rows among `rows`
    and the uncached point (1, 1); NaN without baseline rows or fraction."""
    baseline = sorted([(r["compute_fraction"], r["ssim"]) for r in rows if r["method"] == FEWER_STEPS] + [(1.0, 1.0)])
    if fraction is None or math.isnan(fraction) or len(baseline) < 2:
        return NAN
    return float(np.interp(fraction, *zip(*baseline)))


def compare(rows, speed="speedup"):
    """Adds the fewer-steps SSIM at each row's compute fraction (see fewer_steps_ssim), whether the row beats it,
    and the Pareto-front flag on (`speed`, SSIM)."""
    for row in rows:
        reference = NAN if row["method"] == FEWER_STEPS or row.get("parity") else fewer_steps_ssim(
            rows, row["compute_fraction"])
        row["fewer_steps_ssim"] = reference
        row["beats_fewer_steps"] = None if math.isnan(reference) else bool(row["ssim"] > reference)
    candidates = [r for r in rows if not r.get("parity")]  # a peer's uncached parity check is no method
    front = {id(candidates[i]) for i in pareto_front([(r[speed], r["ssim"]) for r in candidates])}
    for row in rows:
        row["pareto"] = id(row) in front
    return rows


FRONTIER_BUDGETS = (0.35, 0.5, 0.65)
FRONTIER_COLUMNS = ["budget", "framework", "name", "method", "compute_fraction", "ssim", "ssim_min", "psnr",
                    "temporal_ssim", "over_fewer_steps", "leads"]


def frontier(rows, budgets=FRONTIER_BUDGETS):
    """The quality-at-budget frontier: for each budget and each framework (ppcache, each peer framework, and the
    fewer-steps baseline), the row with the best mean SSIM among those whose compute fraction is at most the
    budget. `over_fewer_steps`: its SSIM minus the best fewer-steps row's there; `leads`: best at that budget."""
    def group(row):
        return "fewer steps" if row["method"] == FEWER_STEPS else row["framework"]

    candidates = [r for r in rows if not r.get("parity") and not math.isnan(r["compute_fraction"])]
    out = []
    for budget in budgets:
        best = {}
        for row in candidates:
            if row["compute_fraction"] <= budget + 1e-9 and (group(row) not in best
                                                             or row["ssim"] > best[group(row)]["ssim"]):
                best[group(row)] = row
        baseline = best["fewer steps"]["ssim"] if "fewer steps" in best else NAN
        top = max((r["ssim"] for r in best.values()), default=NAN)
        for name, row in sorted(best.items(), key=lambda item: -item[1]["ssim"]):
            out.append(dict(budget=budget, framework=name, name=row["name"], method=row["method"],
                            compute_fraction=row["compute_fraction"], ssim=row["ssim"], ssim_min=row["ssim_min"],
                            psnr=row["psnr"], temporal_ssim=row.get("temporal_ssim", NAN),
                            over_fewer_steps=row["ssim"] - baseline, leads=row["ssim"] == top))
    return out


def frontier_table(points):
    """Markdown; videos get a temporal-SSIM column (SSIM is then the mean over frames)."""
    video = any(not math.isnan(p.get("temporal_ssim", NAN)) for p in points)
    temporal_head, temporal_rule = (" temporal SSIM |", "---|") if video else ("", "")
    lines = [f"| budget | framework | best config | compute | SSIM (worst) | PSNR dB |{temporal_head} vs fewer steps |",
             f"|---|---|---|---|---|---|{temporal_rule}---|"]
    for p in points:
        lead = " **(best)**" if p["leads"] else ""
        temporal = f" {number(p.get('temporal_ssim', NAN), '.4f')} |" if video else ""
        lines.append(f"| ≤ {p['budget']:.2f} | {p['framework']}{lead} | {p['name']} | "
                     f"{p['compute_fraction']:.3f} | {p['ssim']:.4f} ({p['ssim_min']:.3f}) | {p['psnr']:.2f} |"
                     f"{temporal} {number(p['over_fewer_steps'], '+.4f')} |")
    return "\n".join(lines)


def environment(**settings):
    """Versions, device, threads and platform, plus the run's settings."""
    from importlib import metadata

    import paddle

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return dict(python=platform.python_version(), paddle=paddle.__version__, ppdiffusers=version("ppdiffusers"),
                numpy=np.__version__, scikit_image=version("scikit-image"), ppcache=version("ppcache"),
                device=paddle.device.get_device(), cpu_count=os.cpu_count(),
                omp_num_threads=os.environ.get("OMP_NUM_THREADS"), platform=platform.platform(),
                processor=platform.processor() or platform.machine(),
                date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"), **settings)


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def _json_value(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_results(out, rows, env, name="results", columns=COLUMNS, render=None):
    """<name>.csv (`columns`), <name>.json and <name>.md (`render(rows, env)`, default the benchmark's table) in
    `out`, each written to a temporary file and renamed; returns their paths."""
    render = render or markdown
    paths = [os.path.join(out, name + suffix) for suffix in (".csv", ".json", ".md")]

    def write_csv(temporary):
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)

    def write_json(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"environment": env, "rows": [{k: _json_value(v) for k, v in r.items()} for r in rows]},
                      handle, indent=2)

    def write_markdown(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(render(rows, env) + "\n")

    for path, write in zip(paths, (write_csv, write_json, write_markdown)):
        atomic(path, write)
    return paths


def number(value, spec, suffix=""):
    return "" if _cell(value) == "" else f"{value:{spec}}{suffix}"


def table(rows):
    """The Markdown table: ppcache rows by compute fraction, then the peers."""
    lines = ["| config | framework | method | compute | GMACs | SSIM (worst) | PSNR dB | speed-up [min, max] | "
             "fewer steps SSIM | beats it | Pareto | cache KiB | full steps / blocks computed | overhead ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = sorted(rows, key=lambda r: (r["framework"] != "ppcache", r["framework"],
                                        _cell(r["compute_fraction"]) or 0.0))
    for r in order:
        beats = {True: "yes", False: "no", None: ""}[r.get("beats_fewer_steps")]
        lines.append(
            f"| {r['name']} | {r['framework']} | {r['method']} | {number(r['compute_fraction'], '.3f')} | "
            f"{number(r['gmacs'], '.3f')} | {number(r['ssim'], '.4f')} ({number(r['ssim_min'], '.3f')}) | "
            f"{number(r['psnr'], '.2f')} | {number(r['speedup'], '.2f', 'x')} "
            f"[{number(r['speedup_min'], '.2f')}, {number(r['speedup_max'], '.2f')}] | "
            f"{number(r['fewer_steps_ssim'], '.4f')} | {beats} | {'yes' if r['pareto'] else ''} | "
            f"{number(r['cache_kib'], '.0f')} | {number(r['steps_computed'], '.1f')} / "
            f"{number(r['blocks_computed'], '.1f')} | {number(r['timing_model_ratio'], '.2f')} |")
    return "\n".join(lines)


def markdown(rows, env, points=()):
    settings = (f"model `{env['model']}`, {env['steps']} steps, {env['height']}x{env['width']}, "
                f"{env['num_prompts']} prompts ({env['prompts']}) x seeds {env['seeds']} = {env['cases']} images "
                f"per row, speed-up from {env['repeats']} interleaved uncached/cached pairs; {env['device']}, "
                f"{env['cpu_count']} CPUs, Paddle {env['paddle']}, {env['world_size']} process(es)")
    frontier_part = ["## Quality at a compute budget", frontier_table(points)] if points else []
    return "\n\n".join([
        "# ppcache benchmark", settings, table(rows)] + frontier_part + [
        "SSIM / PSNR: mean over the images against the uncached image of the same prompt and seed (worst SSIM in "
        "brackets). compute: block MACs run / full. fewer steps SSIM: the no-cache baseline with fewer steps at "
        "the same compute, interpolated. overhead ratio: speed-up / (1 / compute fraction) on the FLUX-shaped "
        "timing model (`--overhead`)."])
