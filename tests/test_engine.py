"""The cache engine on the bundled FLUX pipeline: exactness, generations, branches, fallbacks, selection."""
import warnings

import numpy as np
import paddle
import pytest

import ppcache
from ppcache import FirstBlockTaylorConfig, SortBlockConfig, TeaBlockCacheConfig
from ppcache.bench.baselines import shipped_configs
from ppcache.config import load_config
from ppcache.errors import ConfigError, UnsupportedModelError
from ppcache.pipelines.loading import load_pipeline
from ppcache.policies.sortblock import select_blocks
from ppcache.predictors import TaylorLadder

METHODS = {
    "sortblock": SortBlockConfig(),
    "teablockcache": TeaBlockCacheConfig(),
    "teablockcache_taylor": TeaBlockCacheConfig(step_gate=True),
    "firstblock_taylor": FirstBlockTaylorConfig(),
}


def sample(pipe, prompt="a photo of a cat", seed=0, steps=20, **kwargs):
    kwargs.setdefault("height", 32)
    kwargs.setdefault("width", 32)
    out = pipe(prompt=prompt, num_inference_steps=steps, generator=paddle.Generator().manual_seed(seed),
               output_type="np", **kwargs)
    return np.asarray(out.images)


@pytest.fixture
def pipe(flux_pipe):
    ppcache.remove_cache(flux_pipe)
    yield flux_pipe
    ppcache.remove_cache(flux_pipe)


def test_removal_restores_blocks_forward_and_output(pipe):
    transformer = pipe.transformer
    blocks = list(transformer.transformer_blocks) + list(transformer.single_transformer_blocks)
    forward = transformer.forward
    reference = sample(pipe)
    ppcache.apply_cache(pipe, SortBlockConfig())
    assert type(transformer.transformer_blocks[0]).__name__ == "CachedBlock"
    assert np.abs(sample(pipe) - reference).max() > 0
    assert ppcache.remove_cache(pipe)
    restored = list(transformer.transformer_blocks) + list(transformer.single_transformer_blocks)
    assert all(a is b for a, b in zip(blocks, restored))
    assert transformer.forward == forward and "forward" not in transformer.__dict__
    np.testing.assert_array_equal(sample(pipe), reference)
    assert not ppcache.remove_cache(pipe)


def test_applied_but_nothing_predicted_is_exact(pipe):
    reference = sample(pipe)
    ppcache.apply_cache(pipe, SortBlockConfig(timestep_start=0.0, timestep_end=0.0))  # empty window
    np.testing.assert_array_equal(sample(pipe), reference)
    stats = ppcache.summary(pipe)
    assert stats["compute_fraction"] == 1.0 and stats["blocks_predicted"] == 0 and stats["full_steps"] == 20


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_saves_compute_and_stays_close(pipe, name):
    reference = sample(pipe)
    ppcache.apply_cache(pipe, METHODS[name])
    cached = sample(pipe)
    stats = ppcache.summary(pipe)
    assert np.isfinite(cached).all()
    assert stats["steps"] == 20 and stats["calls"] == 20
    assert 0.2 < stats["compute_fraction"] < 0.95
    assert stats["blocks_predicted"] > 0 and stats["fallbacks"] == 0
    assert stats["cache_bytes"] > 0
    assert np.abs(cached - reference).mean() < 0.1


@pytest.mark.parametrize("name", sorted(METHODS))
def test_generations_in_a_row_equal_fresh_runs(bundled_flux, pipe, name):
    """Steps, batch size and resolution change between calls; state never leaks into the next generation."""
    ppcache.apply_cache(pipe, METHODS[name])
    first = sample(pipe, "a rocket", seed=1, steps=20)
    second = sample(pipe, ["a retina", "the moon"], seed=2, steps=12, height=48, width=32)
    fresh = load_pipeline(bundled_flux)
    fresh.set_progress_bar_config(disable=True)
    ppcache.apply_cache(fresh, METHODS[name])
    np.testing.assert_array_equal(sample(fresh, ["a retina", "the moon"], seed=2, steps=12, height=48, width=32),
                                  second)
    assert ppcache.summary(fresh)["steps"] == 12
    np.testing.assert_array_equal(sample(fresh, "a rocket", seed=1, steps=20), first)


def test_true_cfg_branches_keep_separate_state(pipe):
    ppcache.apply_cache(pipe, SortBlockConfig())
    out = sample(pipe, true_cfg_scale=2.0, negative_prompt="")
    stats = ppcache.summary(pipe)
    assert np.isfinite(out).all()
    assert stats["steps"] == 20 and stats["calls"] == 40
    assert sorted({(c["step"], c["branch"]) for c in stats["per_step"]}) == [(s, b) for s in range(20) for b in (0, 1)]
    engine = pipe.transformer._ppcache_engine
    branches = {key[0] for key in engine.state.entries}
    assert branches == {0, 1}
    # each branch makes the same decisions it would make alone: the cond branch's plan matches a no-CFG run
    cond_plan = [c["computed"] for c in stats["per_step"] if c["branch"] == 0]
    assert len(cond_plan) == 20


def test_nonfinite_prediction_falls_back_and_is_counted(pipe, monkeypatch):
    reference = sample(pipe)
    ppcache.apply_cache(pipe, SortBlockConfig())
    original = TaylorLadder.predict_add
    calls = {"n": 0}

    def poisoned(self, base, step):
        calls["n"] += 1
        out = original(self, base, step)
        return out * float("nan") if calls["n"] == 5 else out

    monkeypatch.setattr(TaylorLadder, "predict_add", poisoned)
    out = sample(pipe)
    stats = ppcache.summary(pipe)
    assert np.isfinite(out).all()
    assert stats["fallbacks"] == 1
    assert sum(c["fallback"] for c in stats["per_step"]) == 1
    assert np.abs(out - reference).mean() < 0.1


def test_sortblock_selection_hand_example():
    cosine = {0: 0.9, 1: 0.5, 2: 0.7, 3: 0.5, 4: 0.99, 5: 0.2}
    groups = [[0, 1, 2, 3], [4, 5]]
    # group 1: floor(4 * 0.3) = 1 -> cut at the 2nd smallest (0.5, tied) -> blocks 1 and 3; group 2: j = 0 -> 5
    assert select_blocks(cosine, groups, 0.3) == {1, 3, 5}
    assert select_blocks(cosine, groups, 0.6) == {1, 2, 3, 4, 5}  # floor(2.4) = 2 -> cut 0.7; j = min(1, 1) -> all
    assert select_blocks(cosine, groups, 1.0) == {0, 1, 2, 3, 4, 5}
    assert select_blocks({1: 0.3}, [[0, 1, 2]], 0.9) == {1}  # only scored blocks can be selected


def test_sortblock_phases_follow_the_window(pipe):
    ppcache.apply_cache(pipe, SortBlockConfig(step_num2=4))
    sample(pipe)
    stats = ppcache.summary(pipe)
    timesteps = pipe.scheduler.timesteps_host
    inside = [i for i, t in enumerate(timesteps) if 100 <= t <= 900]
    full = [c["step"] for c in stats["per_step"] if len(c["computed"]) == 12]
    outside = [i for i in range(20) if i not in inside]
    assert set(outside) <= set(full)
    assert set(inside[::4]) <= set(full)
    select_steps = inside[1::4]
    first_select = [c for c in stats["per_step"] if c["step"] == select_steps[0]][0]
    assert first_select["computed"] == []  # an empty mask computes nothing
    assert first_select["indicator"] is not None


def test_sortblock_drift_refresh_places_full_steps_where_block_0_drifts(pipe):
    config = SortBlockConfig(refresh="drift", refresh_threshold=0.35, skip_threshold=0.3, step_num2=4,
                             timestep_start=950, timestep_end=50, final_steps=1)
    ppcache.apply_cache(pipe, config)
    sample(pipe)
    stats = ppcache.summary(pipe)
    calls = stats["per_step"]
    since_full, kinds = None, []
    for call in calls:
        computed, drift = call["computed"], call["indicator"]
        if len(computed) == 12:  # FULL: outside the window, the final step, a large drift or the step cap
            assert (call["timestep"] > 950 or call["step"] == 19 or drift is None or drift >= 0.35
                    or since_full == 3), call
            since_full, kind = 0, "full"
        else:
            assert drift < 0.35 and computed[0] == 0  # block 0 runs at every step: it measures the drift
            kind = "skip" if drift < 0.3 else "partial"
            if kind == "skip":
                assert computed == [0]  # every other block predicted
            since_full += 1
            assert since_full <= 3  # at most step_num2 - 1 steps between FULL steps
        kinds.append(kind)
    assert {"full", "skip", "partial"} <= set(kinds), kinds
    assert 0.3 < stats["compute_fraction"] < 0.7


def test_sortblock_does_not_rank_blocks_without_a_heading(pipe):
    """At the first SELECT after the first FULL, predicted blocks have no derivative yet: they are left out of the
    ranking (a cosine of exactly 1 for all of them would tie and select every block)."""
    ppcache.apply_cache(pipe, SortBlockConfig(step_num2=4, timestep_start=950, timestep_end=50))
    sample(pipe)
    calls = ppcache.summary(pipe)["per_step"]
    assert len(calls[3]["computed"]) < 12 and len(calls[4]["computed"]) < 12  # the PARTIAL steps after it


def test_firstblock_taylor_forces_first_warmup_and_last_steps(pipe):
    ppcache.apply_cache(pipe, FirstBlockTaylorConfig(threshold=10.0, warmup_steps=3))  # gate always open
    sample(pipe)
    per_step = ppcache.summary(pipe)["per_step"]
    full = [c["step"] for c in per_step if len(c["computed"]) == 12]
    skipped = [c["step"] for c in per_step if c["computed"] == [0]]
    assert {0, 1, 2, 19} <= set(full)
    assert skipped == [s for s in range(3, 19)]


def test_paddlemix_example_runs_on_the_transformer_alone(pipe):
    """The PaddleMIX snippet, unchanged apart from the import, gives the same result as attaching the pipeline."""
    from ppcache import SortBlockConfig as PaddleMIXSortBlockConfig, apply_sort_block

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = PaddleMIXSortBlockConfig(
            num_inference_steps=20, timestep_start=900, timestep_end=100, percentage=1.0, step_num=1,
            step_num2=5, beta=0.3, current_timestep_callback=lambda: getattr(pipe, "_current_timestep", None))
        apply_sort_block(pipe.transformer, config)
        transformer_only = sample(pipe)
    assert any("percentage has no effect" in str(w.message) for w in caught)
    stats = ppcache.summary(pipe.transformer)
    assert stats["steps"] == 20 and stats["blocks_predicted"] > 0
    ppcache.remove_cache(pipe.transformer)
    ppcache.apply_cache(pipe, SortBlockConfig())
    np.testing.assert_array_equal(sample(pipe), transformer_only)


def test_transformer_only_without_callback_reads_timesteps(pipe):
    ppcache.apply_cache(pipe.transformer, SortBlockConfig())
    first = sample(pipe)
    second = sample(pipe)  # a new generation is detected from the rising timestep
    np.testing.assert_array_equal(first, second)
    assert ppcache.summary(pipe)["steps"] == 20


def test_explicit_generation_context(pipe):
    ppcache.apply_cache(pipe.transformer, FirstBlockTaylorConfig(threshold=10.0))
    timesteps = [1000.0, 800.0, 600.0]
    with ppcache.generation(pipe.transformer, num_steps=3, timesteps=timesteps) as gen:
        x = paddle.randn([1, 64, pipe.transformer.config.in_channels])  # 8 x 8 packed latent tokens
        text = paddle.randn([1, 16, 32])
        pooled = paddle.randn([1, 32])
        ids = pipe.latent_image_ids(8, 8, "float32")
        for i, t in enumerate(timesteps):
            gen.step(i, t)
            pipe.transformer(x, text, pooled, paddle.to_tensor([t / 1000]), ids, paddle.zeros([16, 3]))
    per_step = ppcache.summary(pipe.transformer)["per_step"]
    assert [c["step"] for c in per_step] == [0, 1, 2]
    assert all(len(c["computed"]) == 12 for c in per_step)  # warm-up, then the forced last step


def test_unsupported_model_and_bad_configs(pipe):
    with pytest.raises(UnsupportedModelError, match="supported model families: FLUX .* SD3"):
        ppcache.apply_cache(paddle.nn.Linear(2, 2), SortBlockConfig())
    with pytest.raises(ConfigError, match="timestep_end .* must not exceed timestep_start"):
        ppcache.apply_cache(pipe, SortBlockConfig(timestep_start=100, timestep_end=900))
    with pytest.raises(ConfigError, match="unknown key cache.thresh"):
        ppcache.apply_cache(pipe, {"method": "firstblock_taylor", "thresh": 0.1})
    with pytest.raises(ConfigError, match="gate: 'sometimes' is not allowed"):
        ppcache.apply_cache(pipe, {"method": "firstblock_taylor", "gate": "sometimes"})
    with pytest.raises(ConfigError, match="cannot use int as a cache config"):
        ppcache.apply_cache(pipe, 3)


def test_sortblock_memory_is_two_residuals_per_block_and_stream(pipe):
    from ppcache.predictors import TaylorLadder

    ppcache.apply_cache(pipe, SortBlockConfig())
    sample(pipe)
    engine = pipe.transformer._ppcache_engine
    ladders = {k: v for k, v in engine.state.entries.items() if isinstance(v, TaylorLadder)}
    assert ladders and all(len(v.factors) <= 2 for v in ladders.values())
    streams = {(k[2], k[3]) for k in ladders}
    assert len(streams) == len(ladders)  # one ladder per block and stream (branch 0 only here)
    full = [v for k, v in engine.state.entries.items() if k[1] == "full"]
    assert full and all(v.shape[-1] == 64 // 8 for v in full)  # only the C/8 channel subset is kept
    assert ppcache.summary(pipe)["cache_bytes"] == engine.state.nbytes()


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_method_survives_a_forced_recompute(pipe, monkeypatch, name):
    """A call whose prediction is not finite is re-run with every block computed: no method may depend on its
    own decide() having run in that call (its bookkeeping must come from the computed blocks)."""
    import paddle

    from ppcache import engine as engine_module

    original = engine_module.ops.all_finite
    seen = {"n": 0}

    def poisoned(tensors):
        seen["n"] += bool(tensors)  # calls that check predictions
        return paddle.to_tensor(False) if tensors and seen["n"] == 3 else original(tensors)

    ppcache.apply_cache(pipe, load_config(shipped_configs()[name]).cache)
    monkeypatch.setattr(engine_module.ops, "all_finite", poisoned)
    try:
        out = sample(pipe)
        stats = ppcache.summary(pipe)
    finally:
        ppcache.remove_cache(pipe)
    assert np.isfinite(out).all()
    assert seen["n"] >= 3 and stats["fallbacks"] == 1


def test_final_steps_are_computed_whatever_the_method_decides(pipe):
    config = ppcache.TaylorSeerConfig(interval=5, first_enhance=3, final_steps=2)
    ppcache.apply_cache(pipe, config)
    try:
        sample(pipe)
        stats = ppcache.summary(pipe)
    finally:
        ppcache.remove_cache(pipe)
    full = [c["step"] for c in stats["per_step"] if not c["components_predicted"]]
    # steps 0-2 (first_enhance), then every 5th on its counter, and the last two
    assert full[:3] == [0, 1, 2] and full[-2:] == [18, 19] and 0 < stats["compute_fraction"] < 1
    with pytest.raises(ConfigError, match="final_steps"):
        ppcache.TaylorSeerConfig(final_steps=-1)
