"""The classic methods on the bundled FLUX: each one's decision sequence against a hand-computed schedule."""
import numpy as np
import paddle
import pytest

import ppcache
from ppcache.bench.calibration import fit_polynomial, simulate_thresholds
from ppcache.policies.tgate import tgate_computes

BLOCKS = 12


def run(pipe, config, steps=20, **kwargs):
    ppcache.apply_cache(pipe, config)
    try:
        out = pipe(prompt="a photo of a cat", num_inference_steps=steps, height=32, width=32, output_type="np",
                   generator=paddle.Generator().manual_seed(0), **kwargs).images
        return np.asarray(out), ppcache.summary(pipe)
    finally:
        ppcache.remove_cache(pipe)


def full_steps(stats):
    return [c["step"] for c in stats["per_step"] if len(c["computed"]) == BLOCKS and not c["components_predicted"]]


def test_taylorseer_schedule_and_memory(flux_pipe):
    out, stats = run(flux_pipe, ppcache.TaylorSeerConfig(interval=3, first_enhance=3, max_order=2))
    assert full_steps(stats) == [0, 1, 2, 5, 8, 11, 14, 17]
    assert np.isfinite(out).all() and stats["cache_bytes"] > 0


def test_fora_schedule(flux_pipe):
    _, stats = run(flux_pipe, ppcache.FORAConfig(interval=3))
    assert full_steps(stats) == [0, 3, 6, 9, 12, 15, 18, 19]
    reused = [c for c in stats["per_step"] if c["components_predicted"]]
    assert all(c["components_predicted"] == 3 * BLOCKS for c in reused)  # every tracked component of every block


def test_tgate_schedule(flux_pipe):
    config = ppcache.TGateConfig(gate_step=10, warm_up=2, sp_interval=3, fi_interval=2)
    computes = [s for s in range(20) if tgate_computes(s, config)]
    assert computes == [0, 1, 2, 3, 6, 9, 10, 12, 14, 16, 18]
    _, stats = run(flux_pipe, config)
    attention_reused = [c["step"] for c in stats["per_step"] if c["components_predicted"]]
    assert attention_reused == [s for s in range(20) if s not in computes]
    assert all(c["components_predicted"] == BLOCKS for c in stats["per_step"] if c["components_predicted"])


def test_pab_broadcasts_only_inside_the_range(flux_pipe):
    _, stats = run(flux_pipe, ppcache.PABConfig(skip_range=2, timestep_low=100, timestep_high=800))
    timesteps = flux_pipe.scheduler.timesteps_host
    expected = [i for i, t in enumerate(timesteps) if 100 < t < 800 and i % 2 and i > 0]
    assert [c["step"] for c in stats["per_step"] if c["components_predicted"]] == expected


def test_dbcache_guards(flux_pipe):
    config = ppcache.DBCacheConfig(Fn_compute_blocks=2, Bn_compute_blocks=1, residual_diff_threshold=10.0,
                                   max_warmup_steps=2, max_continuous_cached_steps=2)
    _, stats = run(flux_pipe, config)
    cached = [c["step"] for c in stats["per_step"] if c["predicted"]]
    # warm-up 0, 1 computed; then two cached, one computed (the run cap), and so on
    assert cached == [2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
    for call in stats["per_step"]:
        if call["predicted"]:
            assert call["computed"] == [0, 1, 11] and call["predicted"] == list(range(2, 11))


def test_fbcache_threshold_zero_never_caches(flux_pipe):
    _, stats = run(flux_pipe, ppcache.DBCacheConfig(residual_diff_threshold=0.0))
    assert stats["compute_fraction"] == 1.0


def test_blockdance_reuses_the_prefix_inside_the_window(flux_pipe):
    _, stats = run(flux_pipe, ppcache.BlockDanceConfig(boundary_block=5, refresh_interval=2))
    timesteps = flux_pipe.scheduler.timesteps_host
    inside = [i for i, t in enumerate(timesteps) if 100 <= t <= 900]
    reuse = [c["step"] for c in stats["per_step"] if c["predicted"]]
    assert reuse == inside[1::2]
    for call in stats["per_step"]:
        if call["predicted"]:
            assert call["predicted"] == list(range(6)) and call["computed"] == list(range(6, BLOCKS))


def test_teacache_skips_follow_the_accumulator(flux_pipe):
    _, stats = run(flux_pipe, ppcache.TeaCacheConfig(rel_l1_thresh=0.6))
    expected = []
    indicators = {c["step"]: c["indicator"] for c in stats["per_step"]}
    skipped = [c["step"] for c in stats["per_step"] if c["predicted"]]
    for step in range(1, 19):  # first and last steps are always computed
        value = indicators[step]
        assert value is not None
        if value < 0.6:
            expected.append(step)
    assert skipped == expected and skipped
    assert 0 not in skipped and 19 not in skipped


def test_teacache_simulation_matches_hand_count():
    coefficients = [0.0, 0.0, 0.0, 1.0, 0.0]  # R(x) = x
    traces = [[0.0, 0.3, 0.3, 0.3, 0.3, 0.3]]
    # acc: 0.3 (skip), 0.6 >= 0.5 compute, 0.3 skip, 0.6 compute, last step forced: computed 0, 2, 4, 5
    assert simulate_thresholds(traces, coefficients, [0.5]) == {0.5: 4 / 6}


def test_calibration_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    truth = [498.651651, -283.781631, 55.8554382, -3.82021401, 0.264230861]
    x = rng.uniform(0.0, 0.3, 400)
    y = np.polyval(truth, x) + rng.normal(0, 1e-4, x.shape)
    fitted, r2 = fit_polynomial(x, y)
    np.testing.assert_allclose(fitted, truth, rtol=0.02, atol=0.05)
    assert r2 > 0.999


@pytest.mark.parametrize("path", ["teacache", "fbcache", "dbcache", "taylorseer", "fora", "blockdance", "pab",
                                  "tgate"])
def test_shipped_configs_run(flux_pipe, path):
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = ppcache.load_config(os.path.join(root, "configs", f"{path}.yaml"))
    out, stats = run(flux_pipe, config)
    assert np.isfinite(out).all()
    assert stats["compute_fraction"] <= 1.0 and stats["steps"] == 20
