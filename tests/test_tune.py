"""tools/tune.py and ppcache.bench.tune: bisection on a synthetic method, a budget out of reach, the held-out split,
the report schema, the written config reproducing its compute fraction, resume, and bad input (exit 2, one line,
no output). The end-to-end runs use the bundled tiny-flux at 5 steps, 3 prompts and 1-2 methods."""
import importlib.util
import json
import os
import re

import pytest

from ppcache.bench import runner
from ppcache.bench.knobs import CANDIDATES, Knob
from ppcache.bench.runner import Variant
from ppcache.bench.tune import (TuneError, Point, bisect_knob, budget_from, candidates_from, pick,
                                split_entries)
from ppcache.bench.tune_report import COLUMNS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUNE = os.path.join(ROOT, "tools", "tune.py")
THRESHOLD = Knob("synthetic", ("threshold",), expensive=0.01, cheap=2.0)
INTERVAL = Knob("synthetic", ("interval",), expensive=1, cheap=12, integer=True)


def falling(threshold):
    """A synthetic method: compute falls with its threshold from 1.0 to a floor of 0.2."""
    return max(0.2, 1.0 - 0.5 * threshold)


def test_bisection_lands_just_under_the_budget():
    points = bisect_knob(falling, THRESHOLD, budget=0.6, evaluations=8, tolerance=0.01)
    values = [v for v, _ in points]
    assert values[:2] == [2.0, 0.01]  # the cheap end first (reachable?), then the expensive end
    assert len(points) <= 8 and len(set(values)) == len(values)
    within = [f for _, f in points if f <= 0.6]
    assert 0.6 - max(within) <= 0.03  # as close to the budget as 8 evaluations get on a log scale
    assert all(f == falling(v) for v, f in points)


def test_bisection_stops_at_the_tolerance_and_keeps_the_bracket():
    points = bisect_knob(falling, THRESHOLD, budget=0.6, evaluations=30, tolerance=0.01)
    close = [i for i, (_, f) in enumerate(points) if 0.59 <= f <= 0.6]
    assert close == [len(points) - 1]  # stopped on the first point within 0.01 below the budget
    over = [v for v, f in points if f > 0.6]
    within = [v for v, f in points if f <= 0.6]
    assert max(over) < min(within)  # every point over the budget lies on the expensive side


def test_bisection_is_robust_to_a_compute_that_falls_only_on_average():
    bumpy = {}

    def noisy(threshold):  # +-0.05 wiggle around the falling curve, deterministic per value
        bumpy[threshold] = falling(threshold) + 0.05 * ((hash(round(threshold, 6)) % 3) - 1)
        return bumpy[threshold]

    points = bisect_knob(noisy, THRESHOLD, budget=0.6, evaluations=7)
    assert len(points) <= 7
    assert any(f <= 0.6 for _, f in points)


def test_integer_knob_finds_the_shortest_interval_within_the_budget():
    points = bisect_knob(lambda interval: 1.0 / interval, INTERVAL, budget=0.3, evaluations=10)
    values = [v for v, _ in points]
    assert all(isinstance(v, int) for v in values)
    assert 4 in values and 3 in values  # 1/4 within, 1/3 over: nothing lies between
    assert len(points) <= 6


def test_unreachable_and_already_reached_budgets_take_one_or_two_evaluations():
    assert bisect_knob(falling, THRESHOLD, budget=0.05) == [(2.0, 0.2)]
    assert [v for v, _ in bisect_knob(falling, THRESHOLD, budget=1.0)] == [2.0, 0.01]


def point(ssim, fraction, name="x", psnr=30.0):
    return Point(name, name, Variant(name, name, 10), [dict(ssim=ssim, compute_fraction=fraction, psnr=psnr)])


def images(name, ssims, psnr, fraction=0.5):
    return Point(name, name, Variant(name, name, 10),
                 [dict(ssim=s, compute_fraction=fraction, psnr=psnr) for s in ssims])


def test_pick_is_the_best_ssim_within_the_budget():
    points = [point(0.99, 0.7), point(0.95, 0.5), point(0.97, 0.48), point(0.98, 0.40), point(0.90, 0.3)]
    assert pick(points, 0.5) is points[3]  # cheaper and better: a dominated point is never the pick
    assert pick(points[:3] + points[4:], 0.5) is points[2]
    assert pick(points, 0.2) is None


def test_a_tie_goes_to_the_point_that_spends_the_budget():
    cheap = images("cheap", [0.99, 0.95, 0.99, 0.95], psnr=34.0, fraction=0.40)  # mean 0.970
    spending = images("spending", [0.98, 0.96, 0.97, 0.96], psnr=30.0, fraction=0.49)  # 0.9675: within the noise
    assert pick([cheap, spending], 0.5) is spending
    assert pick([cheap, spending], 0.5, band=0.2) is cheap  # both spend it: PSNR breaks the tie


def test_an_ssim_lead_within_the_paired_noise_is_a_tie_that_psnr_breaks():
    noisy = images("noisy", [0.99, 0.95, 0.99, 0.95], psnr=30.0)  # mean 0.970
    steady = images("steady", [0.98, 0.96, 0.97, 0.96], psnr=33.0)  # mean 0.9675, within one standard error
    assert pick([noisy, steady], 0.5) is steady
    clear = images("clear", [0.995, 0.99, 0.995, 0.99], psnr=28.0)  # well ahead of both: SSIM decides
    assert pick([noisy, steady, clear], 0.5) is clear


def test_budget_speedup_and_candidates():
    assert budget_from(speedup=2.5) == pytest.approx(0.4)
    assert budget_from(budget=1.0) == 1.0
    for bad in (dict(budget=0.0), dict(budget=1.2), dict(budget=-0.1), dict(speedup=0.8), {}):
        with pytest.raises(TuneError):
            budget_from(**bad)
    assert list(candidates_from(["fora", "teacache"])) == ["fora", "teacache"]
    assert list(candidates_from(None)) == list(CANDIDATES)
    with pytest.raises(TuneError, match="unknown method 'warp'"):
        candidates_from(["warp"])


def test_every_candidate_builds_a_valid_config_at_both_ends():
    from ppcache.config import build_cache_section

    for name, knob in CANDIDATES.items():
        for setting in knob.settings():
            for value in (knob.expensive, knob.cheap):
                section = build_cache_section(knob.cache_section(value, setting))
                assert section.method == knob.method, name
                assert all(getattr(section, key) == knob.value(value) for key in knob.keys)


def test_holdout_split():
    entries = [(f"p{i}", None) for i in range(7)]
    calibration, heldout = split_entries(entries)
    assert [p for p, _ in heldout] == ["p2", "p5"]
    assert [p for p, _ in calibration] == ["p0", "p1", "p3", "p4", "p6"]
    assert split_entries(entries[:2]) == ([("p0", None)], [("p1", None)])
    with pytest.raises(TuneError, match="at least 2"):
        split_entries(entries[:1])


# ---- the command line -------------------------------------------------------------------------------------------
def load_tool():
    spec = importlib.util.spec_from_file_location("ppcache_tune", TUNE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["--steps", "5", "--num-prompts", "3", "--holdout-seeds", "1", "--evaluations", "4", "--no-progress"]


@pytest.fixture
def generations(monkeypatch):
    real, log = runner.sample, []

    def counting(pipe, prompt, seed, steps, height=32, width=32):
        log.append((prompt, seed, steps))
        return real(pipe, prompt, seed, steps, height, width)

    monkeypatch.setattr(runner, "sample", counting)
    return log


def test_tune_end_to_end_schema_config_and_resume(tmp_path, flux_pipe, generations, capsys):
    from ppcache import apply_cache, load_config, remove_cache, summary
    from ppcache.bench.evaluate import sample

    out = tmp_path / "tune"
    argv = ["--budget", "0.6", "--methods", "teacache", "fora", "--out", str(out)] + TINY
    assert load_tool().main(argv) == 0
    printed = capsys.readouterr().out
    assert "Pick: **" in printed and "| candidate | tuned setting |" in printed
    stem = "tiny-flux_0.60"
    for name in (f"tuned_{stem}.yaml", f"tune_{stem}.csv", f"tune_{stem}.json", f"tune_{stem}.md", f"tune_{stem}.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / f"tune_{stem}.json").read_text())
    rows, env = data["rows"], data["environment"]
    assert all(set(COLUMNS) <= set(r) for r in rows)
    assert env["budget"] == 0.6 and env["steps"] == 5 and env["calibration_images"] == 2 and env["heldout_images"] == 1
    calibration = [r for r in rows if r["split"] == "calibration"]
    tuned = {r["candidate"]: r for r in calibration if r["role"] == "tuned"}
    assert set(tuned) == {"teacache", "fora"}
    assert all(r["compute_fraction"] <= 0.6 for r in tuned.values())
    assert all(r["compute_min"] <= r["compute_median"] <= r["compute_max"] for r in rows)
    heldout = [r for r in rows if r["split"] == "held-out"]
    assert {r["role"] for r in heldout} == {"tuned", "fewer-steps"}
    assert all(isinstance(r["beats_fewer_steps"], bool) for r in heldout if r["role"] == "tuned")
    picked = [r for r in heldout if r["picked"]]
    assert len(picked) == 1 and picked[0]["candidate"] == env["choice"]
    assert tuned[env["choice"]]["ssim"] == max(r["ssim"] for r in tuned.values())

    # the written config loads and reproduces its recorded calibration compute fraction
    path = out / f"tuned_{stem}.yaml"
    text = path.read_text()
    recorded = tuned[env["choice"]]["compute_fraction"]
    assert f"compute fraction {recorded:.4f}" in text and "held-out" in text and "fewer steps" in text
    config = load_config(str(path))
    assert config.cache.method == tuned[env["choice"]]["method"] and config.run.steps == 5
    cases = json.loads((out / f"tune_{stem}.json").read_text())["environment"]["calibration_cases"]
    fractions = []
    apply_cache(flux_pipe, config)
    try:
        for prompt, seed in cases:
            sample(flux_pipe, prompt, seed, config.run.steps, config.run.height, config.run.width)
            fractions.append(summary(flux_pipe)["compute_fraction"])
    finally:
        remove_cache(flux_pipe)
    assert sum(fractions) / len(fractions) == pytest.approx(recorded, abs=1e-9)

    # a rerun measures nothing and writes the same figures
    generations.clear()
    assert load_tool().main(argv) == 0
    assert [g for g in generations if g[2] != 1] == []  # only the fewer-steps cost probe (1 step) runs again
    again = json.loads((out / f"tune_{stem}.json").read_text())["rows"]
    assert [(r["knob"], r["ssim"], r["compute_fraction"]) for r in again] == [
        (r["knob"], r["ssim"], r["compute_fraction"]) for r in rows]


def test_unreachable_budget_is_one_line_naming_the_closest_point(tmp_path, bundled_flux, capsys):
    out = tmp_path / "tune"
    code = load_tool().main(["--budget", "0.05", "--methods", "teacache", "--out", str(out)] + TINY)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(r"error: no candidate reaches compute fraction 0.050 .* the closest is teacache "
                     r"rel_l1_thresh=5 at 0\.\d+", err), err
    assert not [n for n in os.listdir(out) if n.startswith("tune")]  # measurements kept, no results written


@pytest.mark.parametrize("files,argv,pattern", [
    ({}, ["--budget", "0"], r"--budget must be a compute fraction in \(0, 1\]"),
    ({}, ["--budget", "1.5"], r"--budget must be a compute fraction in \(0, 1\], .* got 1.5"),
    ({}, ["--speedup", "0.5"], "--speedup must be at least 1"),
    ({}, ["--budget", "0.4", "--methods", "warp"], "unknown method 'warp' for --methods; candidates: dbcache"),
    ({"p.txt": "# only a comment\n"}, ["--budget", "0.4", "--prompts", "{tmp}/p.txt"], "p.txt holds no prompts"),
    ({"p.txt": "one prompt\n"}, ["--budget", "0.4", "--prompts", "{tmp}/p.txt"], "needs at least 2"),
    ({}, ["--budget", "0.4", "--holdout", "{tmp}/none.txt"], "prompt file not found: .*none.txt"),
    ({}, ["--budget", "0.4", "--height", "33"], "run.height must be a multiple of"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, capsys, files, argv, pattern):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    argv = [a.format(tmp=tmp_path) for a in argv]
    code = load_tool().main(argv + ["--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and re.search(pattern, err), err
    assert not (tmp_path / "out").exists()


def test_argument_errors_are_one_line_too(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_tool().main(["--budget", "0.4", "--speedup", "2", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cap_is_written_and_measured_on_the_heldout_images(tmp_path, bundled_flux, capsys):
    from ppcache import load_config

    out = tmp_path / "tune"
    assert load_tool().main(["--budget", "0.7", "--methods", "teacache", "--cap", "--out", str(out)] + TINY) == 0
    assert "With the run-time cap `max_compute_fraction: 0.7`" in capsys.readouterr().out
    rows = json.loads((out / "tune_tiny-flux_0.70.json").read_text())["rows"]
    capped = [r for r in rows if r["role"] == "capped"]
    assert len(capped) == 1 and capped[0]["split"] == "held-out"
    assert capped[0]["compute_max"] <= 0.7 + 1e-9  # TeaCache skips whole steps: the cap holds exactly
    config = load_config(str(out / "tuned_tiny-flux_0.70.yaml"))
    assert config.cache.max_compute_fraction == 0.7


def test_two_process_launch_equals_single_run(tmp_path, bundled_flux, launch_two):
    """The real launcher on CPU: both ranks follow the same bisection over their shares of the cases."""
    args = ["--budget", "0.6", "--methods", "fora"] + TINY
    launch_two(TUNE, *args, "--out", str(tmp_path / "dist"))
    assert load_tool().main(args + ["--out", str(tmp_path / "single")]) == 0
    dist, single = (json.loads((tmp_path / d / "tune_tiny-flux_0.60.json").read_text()) for d in ("dist", "single"))
    assert dist["environment"]["world_size"] == 2 and single["environment"]["world_size"] == 1
    figures = [[(r["split"], r["knob"], r["ssim"], r["compute_fraction"]) for r in data["rows"]]
               for data in (dist, single)]
    assert figures[0] == figures[1]
    assert (tmp_path / "dist" / "tuned_tiny-flux_0.60.yaml").read_text().split("\nmodel:")[1] == \
        (tmp_path / "single" / "tuned_tiny-flux_0.60.yaml").read_text().split("\nmodel:")[1]


def test_a_cap_outside_zero_to_one_is_bad_input(tmp_path, capsys):
    code = load_tool().main(["--budget", "0.5", "--cap", "1.5", "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "error: --cap must be a compute fraction in (0, 1], e.g. 0.4, got 1.5"
    assert not (tmp_path / "out").exists()
