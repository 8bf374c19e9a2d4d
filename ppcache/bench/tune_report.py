"""A tune's outputs (ppcache.bench.tune): the ready config `tuned_<model>_<budget>.yaml`, whose comments record
the settings and the measured figures; tune_<model>_<budget>.csv / .json / .md, one row per measured point; and
tune_<model>_<budget>.png, the candidates' tuned points on the held-out images beside fewer steps.

Rows: split "calibration" (every point the search measured; role "tuned" for each candidate's pick, else
"searched") and split "held-out" (each candidate's pick, role "tuned"; the overall pick under the run-time cap,
role "capped"; and the fewer-steps baseline, role "fewer-steps"). Held-out rows are compared with fewer steps
at their own compute fraction (report.compare).
"""
import dataclasses
import os

import yaml

from ..policies.base import MethodConfig
from .plots import FEWER_STEPS, pareto_plot
from .report import NAN, compare, fewer_steps_ssim, number, summarize, write_results
from .store import atomic
from .tune import BUDGET_BAND, spread

COLUMNS = ["candidate", "method", "knob", "split", "role", "steps", "compute_fraction", "compute_min",
           "compute_median", "compute_max", "compute_speedup", "gmacs", "ssim", "ssim_min", "psnr",
           "fewer_steps_ssim", "beats_fewer_steps", "pareto", "within_budget", "picked", "cases"]
CALIBRATION, HELDOUT = "calibration", "held-out"
RUNTIME_ONLY = ("num_inference_steps", "current_timestep_callback")  # set by code, never in a config file


def point_row(point, split, role, budget, picked=False):
    row = summarize(point.candidate, point.variant.method, point.variant.steps, point.records)
    low, median, high = spread(point.records)
    row.update(candidate=point.candidate, knob=point.label, split=split, role=role, compute_min=low,
               compute_median=median, compute_max=high, compute_speedup=1.0 / row["compute_fraction"],
               within_budget=row["compute_fraction"] <= budget, picked=picked, fewer_steps_ssim=NAN,
               beats_fewer_steps=None, pareto=False)
    return row


def table_rows(result):
    """Calibration rows of every measured point, then the held-out rows compared with fewer steps."""
    calibration, heldout = [], []
    for name, outcome in result.outcomes.items():
        for point in outcome.points:
            role = "tuned" if point is outcome.pick else "searched"
            picked = role == "tuned" and name == result.choice
            calibration.append(point_row(point, CALIBRATION, role, result.budget, picked))
        if outcome.heldout is not None:
            heldout.append(point_row(outcome.heldout, HELDOUT, "tuned", result.budget, name == result.choice))
    if result.capped is not None:
        heldout.append(point_row(result.capped, HELDOUT, "capped", result.budget))
    heldout += [point_row(point, HELDOUT, FEWER_STEPS, result.budget) for point in result.baseline]
    return calibration + compare(heldout, speed="compute_speedup")


def by_candidate(rows, split, role="tuned"):
    """{candidate: row} of one split and role."""
    return {r["candidate"]: r for r in rows if r["split"] == split and r["role"] == role}


def cap_line(rows, env):
    """The pick with and without the run-time cap on the held-out images ('' without --cap)."""
    capped = by_candidate(rows, HELDOUT, "capped").get(env["choice"])
    if capped is None:
        return ""
    free = by_candidate(rows, HELDOUT)[env["choice"]]
    return (f"With the run-time cap `max_compute_fraction: {env['cap']:g}` (written into the config), the pick's "
            f"held-out compute per image is at most {capped['compute_max']:.3f} (without: {free['compute_max']:.3f}), "
            f"mean {capped['compute_fraction']:.3f}, SSIM {capped['ssim']:.4f} (worst {capped['ssim_min']:.3f}; "
            f"without: {free['ssim']:.4f}, worst {free['ssim_min']:.3f}).")


def verdict(rows, env):
    """One sentence on the overall pick and the fewer-steps baseline on the held-out images."""
    heldout = by_candidate(rows, HELDOUT)
    if env["choice"] is None:
        return "No candidate reaches the budget."
    pick = heldout[env["choice"]]
    line = (f"Pick: **{pick['candidate']}** (`{pick['knob']}`), written to `{env['config']}`: held-out SSIM "
            f"{pick['ssim']:.4f} at compute {pick['compute_fraction']:.3f}; fewer steps at that compute: "
            f"{pick['fewer_steps_ssim']:.4f}")
    if pick["beats_fewer_steps"]:
        return line + " (the pick beats it)."
    others = [r for r in heldout.values() if r["beats_fewer_steps"]]
    alternative = (f"; of the other tuned points, {max(others, key=lambda r: r['ssim'])['candidate']} beats it"
                   if others else "; no tuned point beats it here: prefer fewer steps at this budget")
    return line + f". **The pick does not beat fewer steps on the held-out images**{alternative}."


def candidate_table(rows, env):
    """One line per candidate: its tuned setting on the calibration and held-out images, or why it has none."""
    calibration, heldout = by_candidate(rows, CALIBRATION), by_candidate(rows, HELDOUT)
    lines = ["| candidate | tuned setting | calibration compute | calibration SSIM | held-out compute mean "
             "[min, median, max] | held-out SSIM (worst) | held-out PSNR dB | fewer steps SSIM there | beats it | "
             "points |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in env["candidates"]:
        points = [r for r in rows if r["split"] == CALIBRATION and r["candidate"] == name]
        if name not in calibration:
            nearest = min(points, key=lambda r: r["compute_fraction"])
            lines.append(f"| {name} | out of reach; cheapest `{nearest['knob']}` at {nearest['compute_fraction']:.3f} "
                         f"| | | | | | | | {len(points)} |")
            continue
        cal, held = calibration[name], heldout[name]
        beats = {True: "yes", False: "**no**", None: ""}[held["beats_fewer_steps"]]
        lines.append(
            f"| {'**' + name + '**' if held['picked'] else name} | `{held['knob']}` | {cal['compute_fraction']:.3f} | "
            f"{cal['ssim']:.4f} | {held['compute_fraction']:.3f} [{held['compute_min']:.2f}, "
            f"{held['compute_median']:.2f}, {held['compute_max']:.2f}] | {held['ssim']:.4f} ({held['ssim_min']:.3f}) | "
            f"{held['psnr']:.2f} | {number(held['fewer_steps_ssim'], '.4f')} | {beats} | {len(points)} |")
    return "\n".join(lines)


def trace_table(rows):
    """Every point the search measured, on the calibration images."""
    lines = ["| candidate | setting | compute | SSIM (worst) | PSNR dB | within budget |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['candidate']} | `{r['knob']}` | {r['compute_fraction']:.3f} | {r['ssim']:.4f} "
              f"({r['ssim_min']:.3f}) | {r['psnr']:.2f} | {'yes' if r['within_budget'] else ''} |"
              for r in rows if r["split"] == CALIBRATION]
    return "\n".join(lines)


def markdown(rows, env):
    return "\n\n".join([
        f"# ppcache tune: compute budget {env['budget']:.3f} ({1 / env['budget']:.2f}x fewer block MACs)",
        settings_line(env), verdict(rows, env) + (" " + cap_line(rows, env)).rstrip(),
        f"Fewer steps at the budget on the held-out images (interpolated): SSIM "
        f"{number(env['fewer_steps_ssim_at_budget'], '.4f')}.", candidate_table(rows, env),
        "compute: block MACs run / full, mean over the images. SSIM / PSNR against the uncached image of the same "
        "prompt and seed. A candidate's tuned setting is its measured point with the best calibration SSIM within "
        "the budget; SSIM leads within one paired standard error are ties, which go to the points that spend the "
        f"budget (at most {BUDGET_BAND:g} below it), then to the higher PSNR; the pick is chosen among the tuned "
        "settings by the same rule. The held-out images choose nothing.",
        "## Every measured point (calibration images)", trace_table(rows)])


def settings_line(env):
    return (f"model `{env['model']}`, {env['steps']} steps, {env['height']}x{env['width']}; calibration: "
            f"{env['calibration_prompts']} prompts x seeds {env['calibration_seeds']} ({env['calibration_images']} "
            f"images, {env['prompts']}); held-out: {env['heldout_prompts']} prompts x seeds {env['heldout_seeds']} "
            f"({env['heldout_images']} images, {env['heldout_source']}); at most {env['evaluations']} points per "
            f"knob; {env['wall_seconds'] / 60:.1f} min wall on {env['device']}, {env['cpu_count']} CPUs, "
            f"{env['world_size']} process(es), Paddle {env['paddle']}")


# ---- the config file --------------------------------------------------------------------------------------------
def stem(model, budget):
    """<model>_<budget>: the bundled name or the model directory's name, the budget to 2 decimals. Files of
    several budgets (and their shared records) can live in one output directory."""
    return f"{os.path.basename(os.path.normpath(str(model)))}_{budget:.2f}"


def _line(key, value, comment=""):
    """`  key: value` in YAML (lists inline; floats as PyYAML reads them back), with an optional comment."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).splitlines()[0]
    return f"  {key}: {text}" + (f"  # {comment}" if comment else "")


def config_text(result, rows, env):
    """The tuned config: the pick's method with every field it measured, the run settings, and comments with the
    tune's settings and figures. It loads with ppcache.load_config."""
    outcome = result.outcomes[result.choice]
    cal, held = by_candidate(rows, CALIBRATION)[result.choice], by_candidate(rows, HELDOUT)[result.choice]
    beats = ("beats it" if held["beats_fewer_steps"] else
             "does NOT beat it: fewer steps is as good here")
    header = [
        f"# ppcache config tuned by tools/tune.py for compute fraction <= {result.budget:.3f} "
        f"({1 / result.budget:.2f}x fewer block MACs): {result.choice} {outcome.pick.label}",
        f"# model {env['model']} ({env['pipeline']} pipeline), {env['height']}x{env['width']}, {env['steps']} steps; "
        f"date {env['date']}",
        f"# calibration: {env['calibration_prompts']} prompts x seeds {env['calibration_seeds']} from "
        f"{env['prompts']}: "
        f"compute fraction {cal['compute_fraction']:.4f}, SSIM {cal['ssim']:.4f}, PSNR {cal['psnr']:.2f} dB",
        f"# held-out: {env['heldout_prompts']} prompts x seeds {env['heldout_seeds']} ({env['heldout_source']}): "
        "compute "
        f"fraction {held['compute_fraction']:.4f} (per image min {held['compute_min']:.3f}, median "
        f"{held['compute_median']:.3f}, max {held['compute_max']:.3f}), SSIM {held['ssim']:.4f} (worst "
        f"{held['ssim_min']:.3f}), PSNR {held['psnr']:.2f} dB",
        f"# fewer steps at that compute on the held-out images: SSIM {number(held['fewer_steps_ssim'], '.4f')}; "
        f"the config {beats}",
        "# SSIM / PSNR against the uncached image of the same prompt and seed. Every candidate's tuned point: "
        f"tune_{env['stem']}.md",
    ]
    header.append(f"# {cap_line(rows, env)}" if result.capped is not None else
                  "# For a hard latency bound add `max_compute_fraction: <fraction>` to the cache section "
                  "(dynamic methods).")
    model = ["model:", _line("path", env["model"]), _line("pipeline", env["pipeline"])]
    run = ["run:", _line("steps", env["steps"]), _line("height", env["height"]), _line("width", env["width"])]
    if env.get("guidance_scale") is not None:
        run.append(_line("guidance_scale", env["guidance_scale"], "the pipeline's default, as tuned"))
    run.append(_line("output", f"outputs/{os.path.splitext(env['config'])[0]}.png"))
    cache = ["cache:"]
    tuned_keys = set(outcome.knob.keys) | set(outcome.knob.secondary)
    chosen = (result.capped or outcome.pick).variant.cache
    shared = {field.name for field in dataclasses.fields(MethodConfig)}
    names = [f.name for f in dataclasses.fields(chosen)]
    comments = dict.fromkeys(tuned_keys, "tuned") | {"max_compute_fraction": "hard cap at run time"}
    for name in sorted(names, key=lambda n: (n != "method", n in shared)):  # method, its own keys, shared keys
        value = getattr(chosen, name)
        if name not in RUNTIME_ONLY and value is not None:
            cache.append(_line(name, value, comments.get(name, "")))
    return "\n".join(header + model + run + cache) + "\n"


def write_text(path, text):
    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
    atomic(path, write)


def write_outputs(out, result, env):
    """Writes the tables, the plot and the config (each to a temporary name, then renamed); returns the paths.
    `env`: report.environment(...) with the tune's settings."""
    table = table_rows(result)
    heldout = [r for r in table if r["split"] == HELDOUT]
    name = stem(env["model"], result.budget)
    env = dict(env, choice=result.choice, stem=name, config=f"tuned_{name}.yaml",
               fewer_steps_ssim_at_budget=fewer_steps_ssim(heldout, result.budget))
    paths = write_results(out, table, env, name=f"tune_{name}", columns=COLUMNS, render=markdown)
    plot = os.path.join(out, f"tune_{name}.png")
    title = f"{env['model']}, {env['steps']} steps, budget {result.budget:.2f}: tuned points on the held-out images"
    atomic(plot, lambda temporary: pareto_plot(heldout, temporary, title, speed="compute_speedup"))
    config = os.path.join(out, env["config"])
    write_text(config, config_text(result, table, env))
    return paths + [plot, config], table, env

