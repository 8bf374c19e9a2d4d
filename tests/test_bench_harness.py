"""tools/benchmark.py and ppcache.bench.runner on the bundled model (32x32, a few steps, 2-3 prompts):
references generated once and reused, resume after an interruption, sharded run == single run, the output
schema, and one-line errors with exit code 2 and no output for bad input."""
import csv
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from ppcache.bench import runner
from ppcache.bench.report import COLUMNS
from ppcache.bench.runner import Benchmark, cache_variants, fewer_steps
from ppcache.bench.store import Store
from ppcache.config import load_config, resolve_model_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARK = os.path.join(ROOT, "tools", "benchmark.py")
MODEL_DIR = resolve_model_path("tiny-flux")
STEPS = 4
CASES = [("a photo of a cat", 0), ("the moon", 1), ("a handwritten digit 3", 0)]
QUALITY = ("name", "method", "steps", "compute_fraction", "gmacs", "ssim", "ssim_min", "psnr", "cache_kib",
           "steps_computed", "blocks_computed", "blocks_predicted", "fallbacks", "cases")


def config(name):
    return name, load_config(os.path.join(ROOT, "configs", f"{name}.yaml"))


def variants(*names):
    # one fewer-steps point (2 of 4 steps): the engine's one-step cost probe is then the only 1-step sample
    return fewer_steps(STEPS, fractions=(0.5,)) + cache_variants([config(n) for n in names], STEPS)


def bench(pipe, out, names=("fora", "sortblock"), **kwargs):
    return Benchmark(pipe, Store(str(out), MODEL_DIR, 32, 32), variants(*names), CASES, STEPS, repeats=2,
                     **kwargs)


@pytest.fixture
def pipe(flux_pipe):
    return flux_pipe


@pytest.fixture
def generations(monkeypatch):
    """Counts the sampler's calls by step count (1-step calls: the cost probe); `fail_after` interrupts."""
    real, log = runner.sample, {"steps": [], "fail_after": None}

    def counting(pipe, prompt, seed, steps, height=32, width=32):
        if log["fail_after"] is not None and len(log["steps"]) >= log["fail_after"]:
            raise KeyboardInterrupt
        log["steps"].append(steps)
        return real(pipe, prompt, seed, steps, height, width)

    monkeypatch.setattr(runner, "sample", counting)
    return log


def quality(rows):
    return [{k: r[k] for k in QUALITY} for r in rows]


def test_references_are_generated_once_and_reused(pipe, tmp_path, generations):
    bench(pipe, tmp_path, names=("fora",)).run()
    refs = sorted(os.listdir(tmp_path / "refs"))
    assert len(refs) == len(CASES)
    # per case: reference + fewer-steps + fora; timing: 2 pairs x 2 variants; the 1-step cost probe
    assert sorted(generations["steps"]) == sorted([STEPS] * 3 + [2] * 3 + [STEPS] * 3 + [STEPS, 2] * 2
                                                  + [STEPS] * 4 + [1])
    generations["steps"].clear()
    second = bench(pipe, tmp_path, names=("fora", "sortblock"))  # a config added: only its work is done
    second.run()
    assert generations["steps"] == [STEPS] * 3 + [STEPS] * 4
    assert sorted(os.listdir(tmp_path / "refs")) == refs
    generations["steps"].clear()
    second.run()  # everything on disk: nothing generated
    assert generations["steps"] == []
    assert len(second.merge(timeout=0)) == 3


def test_interrupted_run_resumes(pipe, tmp_path, generations):
    straight = bench(pipe, tmp_path / "straight")
    straight.run()
    total = [s for s in generations["steps"] if s != 1]
    generations["steps"].clear()
    # 3 references, the probe, 3 fewer-steps images, 2 timing pairs, then 1 of fora's 3 images: interrupted
    generations["fail_after"] = 12
    with pytest.raises(KeyboardInterrupt):
        bench(pipe, tmp_path / "resumed").run()
    done = [s for s in generations["steps"] if s != 1]
    generations["steps"].clear()
    generations["fail_after"] = None
    resumed = bench(pipe, tmp_path / "resumed")
    resumed.run()
    again = [s for s in generations["steps"] if s != 1]
    assert len(done) + len(again) == len(total)  # nothing generated twice
    assert quality(resumed.merge(timeout=0)) == quality(straight.merge(timeout=0))


def test_sharded_run_equals_single_run(pipe, tmp_path):
    single = bench(pipe, tmp_path / "single")
    single.run()
    rank0 = bench(pipe, tmp_path / "sharded", rank=0, world=2)
    rank0.run()
    with pytest.raises(TimeoutError, match="results from other ranks did not arrive"):
        rank0.merge(timeout=0)
    # rank 0: cases 0 and 2, timings of variants 0 and 2; rank 1: case 1, timing of variant 1
    assert len(os.listdir(tmp_path / "sharded" / "refs")) == 2
    assert len(os.listdir(tmp_path / "sharded" / "timing")) == 2
    bench(pipe, tmp_path / "sharded", rank=1, world=2).run()
    assert len(os.listdir(tmp_path / "sharded" / "refs")) == 3
    assert quality(rank0.merge(timeout=0)) == quality(single.merge(timeout=0))


def load_tool():
    spec = importlib.util.spec_from_file_location("ppcache_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(out, *extra):
    configs = [os.path.join(ROOT, "configs", n) for n in ("fora.yaml", "baseline.yaml")]
    return load_tool().main(["--configs", *configs, "--steps", "3", "--num-prompts", "2", "--repeats", "1",
                             "--out", str(out), "--no-progress", *extra])


def test_outputs_schema_and_two_runs_agree(tmp_path, bundled_flux, capsys):
    assert run_tool(tmp_path / "a") == 0
    printed = capsys.readouterr().out
    assert "| fora | ppcache | fora |" in printed and "results.csv" in printed
    for name in ("results.csv", "results.json", "results.md", "frontier.csv", "frontier.md", "pareto.png",
                 "contact_sheet.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    assert "| ≤ 0.35 | fewer steps **(best)** | 1/3 steps | 0.333 |" in printed  # frontier at the default budgets
    with open(tmp_path / "a" / "results.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    # fewer steps at 3 steps: 1 and 2 of 3; baseline.yaml (no cache) is the reference, not a row
    assert [r["name"] for r in rows] == ["1/3 steps", "2/3 steps", "fora"]
    assert {r["framework"] for r in rows} == {"ppcache"}
    data = json.loads((tmp_path / "a" / "results.json").read_text())
    env = data["environment"]
    for key in ("python", "paddle", "ppdiffusers", "numpy", "device", "cpu_count", "platform", "steps", "prompts",
                "seeds", "cases", "world_size"):
        assert key in env, key
    assert env["steps"] == 3 and env["cases"] == 2 and env["seeds"] == [0]
    points = json.loads((tmp_path / "a" / "frontier.json").read_text())["rows"]
    assert points and {p["budget"] for p in points} <= {0.35, 0.5, 0.65}
    assert [set(r) >= set(COLUMNS) for r in data["rows"]] == [True] * 3
    fora = data["rows"][2]
    assert 0 < fora["compute_fraction"] < 1 and fora["speedup"] > 0 and fora["cache_kib"] > 0
    assert fora["gmacs"] > 0 and fora["blocks_computed"] > 0 and isinstance(fora["pareto"], bool)
    assert run_tool(tmp_path / "b") == 0  # a fresh run with the same seeds: the same quality, exactly
    again = json.loads((tmp_path / "b" / "results.json").read_text())["rows"]
    assert quality(again) == quality(data["rows"])


@pytest.mark.parametrize("files,argv,pattern", [
    ({}, ["--prompts", "{tmp}/missing.txt"], "error: prompt file not found: .*missing.txt"),
    ({"p.txt": "\n# nothing\n"}, ["--prompts", "{tmp}/p.txt"], "p.txt holds no prompts"),
    ({"p.csv": "text\na cat\n"}, ["--prompts", "{tmp}/p.csv"], "no 'prompt' or 'caption' column"),
    ({"p.jsonl": '{"prompt": "a"}\nnot json\n'}, ["--prompts", "{tmp}/p.jsonl"], "p.jsonl, line 2 is not valid JSON"),
    ({}, ["--configs", "{tmp}/nope.yaml"], "error: config file not found: .*nope.yaml"),
    ({"c.yaml": "cache: [unclosed\n"}, ["--configs", "{tmp}/c.yaml"], "c.yaml is not valid YAML"),
    ({"c.yaml": "cache:\n  method: warp\n"}, ["--configs", "{tmp}/c.yaml"], "unknown method 'warp'"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, capsys, files, argv, pattern):
    import re

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    argv = [a.format(tmp=tmp_path) for a in argv]
    if "--configs" not in argv:
        argv = ["--configs", os.path.join(ROOT, "configs", "fora.yaml")] + argv
    code = load_tool().main(argv + ["--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and re.search(pattern, err), err
    assert not (tmp_path / "out").exists()


def test_bad_prompt_file_exit_code_from_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, BENCHMARK, "--configs", os.path.join(ROOT, "configs", "fora.yaml"),
                             "--prompts", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: prompt file not found: {tmp_path / 'missing.jsonl'} "
                                                  "(pass a .txt, .jsonl or .csv file with --prompts)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.long("a real 2-process paddle.distributed.launch beside a single-process benchmark")
def test_two_process_launch_equals_single_run(tmp_path, bundled_flux, launch_two):
    """The real launcher on CPU (gloo): 2 ranks, 3 cases (an uneven split); rank 0 merges."""
    configs = os.path.join(ROOT, "configs", "fora.yaml")
    args = ["--configs", configs, "--steps", "3", "--num-prompts", "3", "--repeats", "1", "--no-progress"]
    launch_two(BENCHMARK, *args, "--out", str(tmp_path / "dist"))
    assert load_tool().main(args + ["--out", str(tmp_path / "single")]) == 0
    dist, single = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("dist", "single"))
    assert dist["environment"]["world_size"] == 2 and single["environment"]["world_size"] == 1
    assert quality(dist["rows"]) == quality(single["rows"])
