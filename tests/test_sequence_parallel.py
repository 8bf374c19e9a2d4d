"""Sequence-parallel FLUX over gloo: two CPU processes under paddle.distributed.launch (ppcache.parallel)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ppcache.config import load_config
from ppcache.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distributed", "sequence_parallel_worker.py")
BENCHMARK = os.path.join(ROOT, "tools", "benchmark.py")
CONFIGS = ["dbcache_fast", "sortblock", "teacache", "taylorseer", "firstblock_taylor_fast", "fora", "magcache",
           "easycache"]
LAUNCH_TIMEOUT = 300  # seconds: a hang fails the test instead of the suite


def launch(tmp_path, script, *args):
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
               "--log_dir", str(tmp_path / "log"), script, *map(str, args)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    logs = [(tmp_path / "log" / f"workerlog.{rank}").read_text() for rank in (0, 1)]
    return done.returncode, logs


@pytest.mark.long("two processes, eight configs cached 10 steps each, single-process reference in each")
def test_two_ranks_equal_one_process_and_decide_alike(tmp_path):
    configs = [os.path.join(ROOT, "configs", f"{name}.yaml") for name in CONFIGS]
    code, logs = launch(tmp_path, WORKER, tmp_path / "out", 10, *configs)
    assert code == 0, logs[0][-3000:]
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for result in ranks:
        assert result["transformer_max_abs_diff"] <= 1e-5
        assert result["restored_max_abs_diff"] == 0.0  # remove_cache under sequence parallelism
    for name in CONFIGS:
        first, second = (result["configs"][f"{name}.yaml"] for result in ranks)
        assert first["decisions"] == second["decisions"], name  # every rank, every step and block
        assert first["decisions"] == first["single_decisions"], name
        assert first["ssim"] >= 0.999, (name, first["ssim"])
        assert first["compute_fraction"] < 1.0, name
        assert first["sequence_parallel"] == {"rank": 0, "ranks": 2,
                                              "cache_bytes_per_rank": first["sequence_parallel"]["cache_bytes_per_rank"]}
        assert first["sequence_parallel"]["cache_bytes_per_rank"] > 0
        assert first["reduces"] > 0 or name in ("taylorseer", "fora")  # schedule methods need no indicator


def test_a_failing_rank_stops_every_rank(tmp_path):
    code, logs = launch(tmp_path, WORKER, tmp_path / "out", "fail:1")
    assert code != 0
    assert "rank 1 failed on purpose" in logs[1]
    assert "rank 1 failed on purpose" not in logs[0]  # rank 0 was stopped by the launcher, not left waiting


def test_tokens_that_do_not_split_are_one_line_errors_on_every_rank(tmp_path):
    config = tmp_path / "sp.yaml"
    config.write_text("run:\n  steps: 2\n  height: 34\n  width: 34\n  output: out.png\n"
                      "cache:\n  method: dbcache\nparallel:\n  sequence: 2\n")
    code, logs = launch(tmp_path, os.path.join(ROOT, "tools", "infer.py"), "--config", config)
    assert code != 0
    for log in logs:
        assert "error: sequence parallelism over 2 ranks needs the image token count to divide evenly, but it is 289" in log
        assert "Traceback" not in log
    assert not (tmp_path / "out.png").exists()


def test_sequence_without_the_launcher_is_a_one_line_error(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import infer

    config = tmp_path / "sp.yaml"
    config.write_text("run:\n  steps: 2\n  output: " + str(tmp_path / "x.png") + "\nparallel:\n  sequence: 2\n")
    assert infer.main(["--config", str(config)]) == 2
    assert "launch it with python -m paddle.distributed.launch --nproc_per_node 2" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("text, message", [
    ("parallel:\n  sequence: 0\n", "parallel.sequence must be between 1 and 1024, got 0"),
    ("parallel:\n  ranks: 2\n", "unknown key parallel.ranks; allowed keys: sequence"),
])
def test_parallel_section_is_validated(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.long("two launches of the benchmark on two ranks (6 variants, then one resumed)")
def test_benchmark_runs_sequence_parallel_and_resumes_in_step(tmp_path):
    config = tmp_path / "teacache_sp.yaml"
    config.write_text((Path(ROOT) / "configs" / "teacache.yaml").read_text() + "\nparallel:\n  sequence: 2\n")
    args = ["--configs", config, "--num-prompts", 1, "--steps", 8, "--repeats", 1, "--out", tmp_path / "out",
            "--no-progress"]
    code, logs = launch(tmp_path, BENCHMARK, *args)
    assert code == 0, logs[0][-3000:]
    assert "sequence-parallel" in logs[0]
    rows = {row["name"]: row for row in json.loads((tmp_path / "out" / "results.json").read_text())["rows"]}
    assert rows["teacache_sp"]["compute_fraction"] < 1.0
    records = sorted((tmp_path / "out" / "records").glob("teacache_sp-*/*.json"))
    mirrors = [tmp_path / "out" / "sequence-ranks" / "1" / p.relative_to(tmp_path / "out") for p in records]
    assert records and all(m.exists() for m in mirrors)  # every rank ran every generation
    first, second = json.loads(records[0].read_text()), json.loads(mirrors[0].read_text())
    assert first["ssim"] == second["ssim"] and first["compute_fraction"] == second["compute_fraction"]
    # rank 1 lost a result: both ranks redo it together (no hang), the rest is skipped on both
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "records").glob("*/*.json") if p != records[0]}
    mirrors[0].unlink()
    code, logs = launch(tmp_path, BENCHMARK, *args)
    assert code == 0, logs[0][-3000:]
    assert mirrors[0].exists()
    assert json.loads(records[0].read_text())["ssim"] == first["ssim"]
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items())


def test_infer_under_the_launcher_splits_a_plain_config_and_gives_the_single_process_image(tmp_path):
    from PIL import Image

    infer, config = os.path.join(ROOT, "tools", "infer.py"), os.path.join(ROOT, "configs", "dbcache.yaml")
    single = subprocess.run([sys.executable, infer, "--config", config, "--steps", "8", "--out", str(tmp_path / "one.png")],
                            capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert single.returncode == 0, single.stderr
    code, logs = launch(tmp_path, infer, "--config", config, "--steps", 8, "--out", tmp_path / "two.png")
    assert code == 0, logs[0][-3000:]
    assert "split across 2 ranks" in logs[0] and "saved" in logs[0] and "saved" not in logs[1]  # rank 0 writes
    one, two = (np.asarray(Image.open(tmp_path / name), dtype=np.int16) for name in ("one.png", "two.png"))
    assert np.abs(one - two).max() <= 1
