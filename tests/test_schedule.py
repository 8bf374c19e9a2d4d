"""Cache schedules (ECAD): genome <-> file round trip, exact recomputes, remapping, malformed files."""
import json

import numpy as np
import paddle
import pytest

import ppcache
from ppcache.errors import ConfigError
from ppcache.cache_schedule import CacheSchedule


def model_components(pipe):
    from ppcache.adapters import adapter_for

    adapter = adapter_for(pipe.transformer)
    return [list(adapter.components(slot[2])) for slot in adapter.block_slots()]


def sample(pipe, steps=20):
    out = pipe(prompt="a photo of a cat", num_inference_steps=steps, height=32, width=32, output_type="np",
               generator=paddle.Generator().manual_seed(0))
    return np.asarray(out.images)


def random_schedule(components, steps, seed=0, keep=0.5):
    rng = np.random.default_rng(seed)
    per_step = sum(len(c) for c in components)
    genome = (rng.random(steps * per_step) < keep).astype(int)
    genome[:per_step] = 1  # step 0 computes everything, so every later 0 bit has a cached value
    return CacheSchedule.from_genome(genome, components, steps, name="random", config={"model": "tiny-flux"})


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_genome_file_round_trip(tmp_path, suffix):
    components = [["attn", "ff", "ff_context"]] * 2 + [["attn", "proj_mlp", "proj_out"]] * 3
    schedule = random_schedule(components, 6, seed=3)
    path = str(tmp_path / f"s{suffix}")
    schedule.save(path)
    loaded = CacheSchedule.load(path)
    np.testing.assert_array_equal(loaded.to_genome(), schedule.to_genome())
    assert loaded.components == components and loaded.config == {"model": "tiny-flux"}


def test_schedule_runs_exactly_the_masked_components(flux_pipe, tmp_path):
    components = model_components(flux_pipe)
    schedule = random_schedule(components, 20, seed=1)
    path = str(tmp_path / "s.json")
    schedule.save(path)
    ppcache.apply_cache(flux_pipe, ppcache.ScheduleConfig(path=path))
    try:
        out = sample(flux_pipe)
        per_step = ppcache.summary(flux_pipe)["per_step"]
    finally:
        ppcache.remove_cache(flux_pipe)
    assert np.isfinite(out).all()
    for call in per_step:
        zeros = sum(not bit for block in schedule.mask[call["step"]] for bit in block.values())
        assert call["components_predicted"] == zeros, call["step"]


def test_full_schedule_is_exact_and_remap_warns(flux_pipe, tmp_path):
    components = model_components(flux_pipe)
    path = str(tmp_path / "full.json")
    CacheSchedule.full(components, 10).save(path)
    reference = sample(flux_pipe)
    ppcache.apply_cache(flux_pipe, ppcache.ScheduleConfig(path=path))
    try:
        with pytest.warns(UserWarning, match="made for 10 steps is remapped .* to 20 steps"):
            out = sample(flux_pipe)
    finally:
        ppcache.remove_cache(flux_pipe)
    np.testing.assert_array_equal(out, reference)


def test_malformed_and_mismatched_schedules(flux_pipe, tmp_path):
    components = model_components(flux_pipe)
    good = random_schedule(components, 4).to_dict()

    def write(data, name="bad.json"):
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        return str(path)

    cases = []
    missing = json.loads(json.dumps(good))
    del missing["cache_schedule"]["components"]
    cases.append((missing, "malformed schedule, missing or invalid 'components'"))
    wrong_name = json.loads(json.dumps(good))
    wrong_name["cache_schedule"]["schedule"]["001"]["0"] = {"attn": True, "mlp": False, "ff_context": True}
    cases.append((wrong_name, "step 001 block 0 must give exactly the components"))
    not_bool = json.loads(json.dumps(good))
    not_bool["cache_schedule"]["schedule"]["002"]["3"]["attn"] = 1
    cases.append((not_bool, "every component maps to true or false"))
    short = json.loads(json.dumps(good))
    del short["cache_schedule"]["schedule"]["003"]
    cases.append((short, "declares 12 blocks x 4 steps but holds 12 blocks x 3 steps"))
    cases.append(("{not json", "is not valid JSON/YAML"))
    for data, pattern in cases:
        with pytest.raises(ConfigError, match=pattern.replace("(", r"\(").replace(")", r"\)")) as info:
            CacheSchedule.load(write(data))
        assert "\n" not in str(info.value)
    other_model = random_schedule([["attn", "ff", "ff_context"]] * 2, 4)
    path = str(tmp_path / "other.json")
    other_model.save(path)
    with pytest.raises(ConfigError, match="was made for 2 blocks .* this model has 12 blocks"):
        ppcache.apply_cache(flux_pipe, ppcache.ScheduleConfig(path=path))
    with pytest.raises(ConfigError, match="schedule file not found"):
        ppcache.apply_cache(flux_pipe, ppcache.ScheduleConfig(path=str(tmp_path / "none.json")))
