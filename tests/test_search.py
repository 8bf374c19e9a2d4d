"""ECAD schedule search: NSGA-II improves a synthetic front, resumes exactly, seeds heuristics, validates its
YAML, and (tiny) searches the bundled FLUX end to end."""
import json
import os
import sys

import numpy as np
import pytest

import ppcache  # noqa: F401
from ppcache.errors import ConfigError

from ppcache.search import (NSGASearch, attention_every_genome, evaluate_candidates, evaluator,  # noqa: E402
                            fora_genome, heuristic_seeds, hypervolume, load_search_config, no_cache_constraint,
                            objectives_from_shards, pick, tgate_genome)
from ppcache.cache_schedule import CacheSchedule  # noqa: E402
from ppcache.search.targets import Point, target_report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPONENTS = [["attn", "ff", "ff_context"]] * 2 + [["attn", "proj_mlp", "proj_out"]] * 2
N_VAR = 48
TARGET = np.random.default_rng(7).integers(0, 2, N_VAR).astype(bool)


def synthetic(genome):
    """Quality = share of the target's important bits recomputed; cost = share of ones."""
    genome = np.asarray(genome, dtype=bool)
    return float(genome[TARGET].mean()), float(genome.mean())


def test_search_improves_synthetic_front():
    search = NSGASearch(N_VAR, population=12, generations=8, mutation=0.05, crossover_points=2, seed=0)
    evaluate = evaluator(synthetic)
    _, first = search.step(evaluate)
    search.run(evaluate)
    X, final = search.front()
    assert search.generation == 8 and len(search.history) == 8
    assert hypervolume(final) > hypervolume(first)
    # the front is mutually non-dominated, feasible (no all-ones genome) and its F matches a re-evaluation
    for i in range(len(final)):
        for j in range(len(final)):
            assert not (np.all(final[j] <= final[i]) and np.any(final[j] < final[i]))
    assert (no_cache_constraint(X) <= 0).all() and not X.all(axis=1).any()
    np.testing.assert_allclose(final, evaluate(X))


def test_resume_gives_the_same_next_generation(tmp_path):
    evaluate = evaluator(synthetic)
    path = str(tmp_path / "checkpoint.pkl")
    interrupted = NSGASearch(N_VAR, population=10, generations=5, crossover_points=3, seed=3, checkpoint=path)
    for _ in range(2):
        interrupted.step(evaluate)
    del interrupted
    resumed = NSGASearch.resume(path)
    assert resumed.generation == 2 and len(resumed.history) == 2

    straight = NSGASearch(N_VAR, population=10, generations=5, crossover_points=3, seed=3)
    for _ in range(2):
        straight.step(evaluate)
    np.testing.assert_array_equal(resumed.ask(), straight.ask())
    resumed._pending = straight._pending = None
    resumed.run(evaluate)
    straight.run(evaluate)
    np.testing.assert_array_equal(resumed.front()[0], straight.front()[0])
    assert NSGASearch.resume(path).generation == 5  # checkpointed after every generation


def test_heuristic_seeds_shapes_and_bits():
    steps, per_step = 6, 12
    attention = np.array([c == "attn" for names in COMPONENTS for c in names])
    fora = fora_genome(COMPONENTS, steps, 3).reshape(steps, per_step)
    assert fora[[0, 3]].all() and not fora[[1, 2, 4, 5]].any()
    every = attention_every_genome(COMPONENTS, steps, 2).reshape(steps, per_step)
    assert every[:, ~attention].all() and every[::2].all() and not every[1::2][:, attention].any()
    gate = tgate_genome(COMPONENTS, steps, 4).reshape(steps, per_step)
    assert gate[:4].all() and gate[4:, ~attention].all() and not gate[4:, attention].any()
    seeds = heuristic_seeds(COMPONENTS, steps, 10, seed=0)
    assert seeds.shape == (10, steps * per_step) and set(np.unique(seeds)) <= {0, 1}
    assert len({row.tobytes() for row in seeds}) == 10 and not seeds.all(axis=1).any()
    assert any((row == fora_genome(COMPONENTS, steps, 2)).all() for row in seeds)
    schedule = CacheSchedule.from_genome(seeds[0], COMPONENTS, steps)  # genomes are schedules of the model
    np.testing.assert_array_equal(schedule.to_genome(), seeds[0])


def test_sharded_evaluation_merges_to_the_whole():
    X = heuristic_seeds(COMPONENTS, 4, 7, seed=1)
    shards = [evaluate_candidates(X, synthetic, rank, 3) for rank in range(3)]
    assert sorted(shards[1]) == [1, 4]
    np.testing.assert_allclose(objectives_from_shards(shards, len(X)), evaluator(synthetic)(X))
    with pytest.raises(ValueError, match="evaluated by no shard"):
        objectives_from_shards(shards[:2], len(X))
    assert pick(np.array([[0.5, 0.1], [0.2, 0.4], [0.0, 0.9]])) == {"fast": 0, "balanced": 1, "quality": 2}
    # with a quality floor of 0.7 the cheap, poor member (quality 0.5) is no pick
    assert pick(np.array([[0.5, 0.1], [0.2, 0.4], [0.1, 0.5], [0.0, 0.9]]), 0.7) == {"fast": 1, "balanced": 2,
                                                                                     "quality": 3}
    assert pick(np.array([[0.5, 0.1], [0.4, 0.4]]), 0.99) == {"fast": 0, "balanced": 0, "quality": 1}


@pytest.mark.parametrize("text, message", [
    ("populaton: 8\n", "unknown key search.populaton; allowed keys: model, steps"),
    ("population: eight\n", "search.population must be int, got 'eight'"),
    ("mutation: 1.5\n", "search.mutation must be between 0.0 and 1.0, got 1.5"),
    ("cost: flops\n", "search.cost: 'flops' is not allowed; use one of compute_fraction, macs"),
    ("- 1\n", "search must be a mapping of keys to values"),
    ("steps: [1\n", "is not valid YAML"),
])
def test_malformed_search_yaml_is_a_one_line_error(tmp_path, text, message):
    path = tmp_path / "search.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_search_config(str(path))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_example_search_yaml_is_valid():
    cfg = load_search_config(os.path.join(ROOT, "examples", "ecad_search.yaml"))
    assert cfg.population == 8 and cfg.generations == 2 and cfg.prompts == 2 and cfg.steps == 10


def test_tiny_search_on_flux_end_to_end(flux_pipe, tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import search_schedule

    config = tmp_path / "search.yaml"
    out = tmp_path / "out"
    config.write_text(f"population: 4\ngenerations: 1\nprompts: 1\nsteps: 4\ncrossover_points: 2\nout: {out}\n"
                      f"compare: [{ROOT}/configs/fora.yaml]\ntransfer_steps: 6\ntransfer_height: 24\n")
    assert search_schedule.main(["--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "generation 1/1" in printed and "front (compute fraction, SSIM)" in printed
    assert "fora (cf" in printed and "fewer steps (2/4)" in printed
    targets = json.loads((out / "targets.json").read_text())
    assert [r["name"] for r in targets["references"]] == ["fora"] and targets["front"]
    transfer = json.loads((out / "transfer.json").read_text())
    assert (transfer["steps"], transfer["height"], transfer["width"]) == (6, 24, 32)
    assert {r["pick"] for r in transfer["rows"]} == {"fast", "balanced", "quality"}
    assert all(0 < r["compute_fraction"] < 1 and 0 < r["ssim"] <= 1 for r in transfer["rows"])
    assert (out / "front.png").exists() and (out / "checkpoint.pkl").exists()
    fronts = sorted(os.listdir(out / "front"))
    assert fronts and all(name.startswith("cf") and name.endswith(".json") for name in fronts)
    for label in ("fast", "balanced", "quality"):
        config_path = str(out / f"schedule_{label}.yaml")
        loaded = ppcache.load_config(config_path)
        assert loaded.cache.method == "schedule" and loaded.run.steps == 4
        assert CacheSchedule.load(loaded.cache.path).num_steps == 4
    # resuming a finished search with more generations continues from the checkpoint
    config.write_text(config.read_text().replace("generations: 1", "generations: 2"))
    assert search_schedule.main(["--config", str(config), "--resume"]) == 0
    assert "resumed" in capsys.readouterr().out


def test_target_report_on_hand_made_points():
    front = [Point("a", 0.3, 0.90), Point("b", 0.5, 0.95), Point("c", 0.7, 0.99)]
    references = [Point("fora", 0.55, 0.94), Point("sortblock", 0.48, 0.96)]
    fewer = [Point("fewer steps (4/10)", 0.4, 0.93), Point("fewer steps (2/10)", 0.2, 0.5)]
    lines, summary = target_report(front, references, fewer)
    text = "\n".join(lines)
    # fora at 0.55 is beaten by b (0.5, 0.95); 4/10 steps at 0.4 (0.93) is NOT: only a (0.90) costs <= 0.4
    assert "fora (cf 0.550, SSIM 0.9400): front reaches 0.9500" in text and "-> dominated" in text
    assert "fewer steps (4/10) (cf 0.400, SSIM 0.9300): front reaches 0.9000 at cf <= 0.400 -> NOT dominated" in text
    assert "fewer steps (2/10) (cf 0.200, SSIM 0.5000): cheaper than every front point" in text
    assert summary["front_dominates_references"] is False
    # best at cf <= 0.5 is b (0.95) < sortblock's 0.96
    assert summary["best_ssim_at_cf_0.5"] == 0.95 and summary["beats_sortblock"] is False
    lines, summary = target_report(front + [Point("d", 0.35, 0.97)], references, fewer)
    assert summary["front_dominates_references"] is True and summary["beats_sortblock"] is True


def test_ranks_exchanging_files_get_the_single_process_objectives(tmp_path):
    import threading

    from ppcache.search.candidate_shards import sharded_evaluator

    X = heuristic_seeds(COMPONENTS, 4, 7, seed=2)
    records = [{}, {}]
    evaluated = [[], []]

    def run(rank, out):
        def objective(genome):
            evaluated[rank].append(genome.tobytes())
            records[rank][genome.tobytes()] = {"quality": synthetic(genome)[0], "rank": rank}
            return synthetic(genome)

        out[rank] = sharded_evaluator(objective, str(tmp_path), rank, 2, records=records[rank], timeout=30)(X)

    results = {}
    threads = [threading.Thread(target=run, args=(rank, results)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    single = evaluator(synthetic)(X)
    np.testing.assert_allclose(results[0], single)
    np.testing.assert_allclose(results[1], single)
    assert len(evaluated[0]) == 4 and len(evaluated[1]) == 3  # each rank ran only its share
    assert records[0] == records[1] and len(records[0]) == len(X)  # both hold every record
    # a rerun (e.g. after --resume) with the same candidates reads the files back without waiting
    again = sharded_evaluator(synthetic, str(tmp_path), 0, 2, timeout=0.1)(X)
    np.testing.assert_allclose(again, single)


@pytest.mark.long("a real 2-process paddle.distributed.launch beside a single-process search")
def test_two_process_launch_matches_a_single_process_search(tmp_path):
    """`python -m paddle.distributed.launch --nproc_per_node 2` on CPU: same front files and metrics."""
    import subprocess

    fronts = {}
    for mode in ("single", "launch"):
        config = tmp_path / f"{mode}.yaml"
        config.write_text(f"population: 4\ngenerations: 2\nprompts: 1\nsteps: 3\ncrossover_points: 2\n"
                          f"out: {tmp_path / mode}\ncompare: []\n")
        launcher = [sys.executable] + (["-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                                        "--log_dir", str(tmp_path / "logs")] if mode == "launch" else [])
        done = subprocess.run(launcher + [os.path.join(ROOT, "tools", "search_schedule.py"), "--config",
                                          str(config)], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        front = tmp_path / mode / "front"
        fronts[mode] = {name: CacheSchedule.load(str(front / name)).metrics["ssim"] for name in os.listdir(front)}
    assert fronts["launch"] == fronts["single"] and fronts["single"]
    assert len(os.listdir(tmp_path / "launch" / "shards")) == 4  # 2 evaluations x 2 ranks
