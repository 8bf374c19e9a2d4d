"""MagCache and EasyCache (whole-step skipping) on the bundled FLUX: their decision rules, MagCache's calibration and
the curve's checks, EasyCache's single read per step, and their one-line errors."""
import json
import os

import numpy as np
import paddle
import pytest

import ppcache
from ppcache.bench.calibration import calibrate_magcache, simulate_magcache
from ppcache.bench.metrics import ssim
from ppcache.engine import CallState
from ppcache.errors import ConfigError
from ppcache.policies.magcache import MagnitudeCurve, skip_plan

STEPS = 20
CASE = ("a photo of a cat", 0)


def run(pipe, config, steps=STEPS, prompt=CASE[0], seed=CASE[1]):
    ppcache.apply_cache(pipe, config)
    try:
        out = pipe(prompt=prompt, num_inference_steps=steps, height=32, width=32, output_type="np",
                   generator=paddle.Generator().manual_seed(seed)).images
        return np.asarray(out)[0], ppcache.summary(pipe)
    finally:
        ppcache.remove_cache(pipe)


def skipped_steps(stats):
    return [c["step"] for c in stats["per_step"] if not c["computed"]]


@pytest.fixture(scope="module")
def curve(flux_pipe):
    return calibrate_magcache(flux_pipe, [CASE], STEPS)


def uncached(pipe, steps=STEPS):
    ppcache.remove_cache(pipe)
    out = pipe(prompt=CASE[0], num_inference_steps=steps, height=32, width=32, output_type="np",
               generator=paddle.Generator().manual_seed(CASE[1])).images
    return np.asarray(out)[0]


@pytest.fixture(scope="module")
def reference(flux_pipe):
    return uncached(flux_pipe)


# ---- MagCache ---------------------------------------------------------------------------------------------------
def test_skip_plan_follows_the_accumulated_error_rule():
    # steps 0-1 retained (0.2 x 10); then the product 0.9, 0.81: errors 0.1, 0.29 (<= 0.3: skip, skip), then
    # K=2 is reached: step 4 computes and resets; 0.9 again at 5 and 6, step 7 computes; ratio 1 from 8 on: error 0
    ratios = [1.0, 1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 1.0, 1.0]
    plan = skip_plan(ratios, threshold=0.3, max_skip_steps=2, retention_ratio=0.2)
    assert [skip for skip, _, _ in plan] == [False, False, True, True, False, True, True, False, True, True]
    assert plan[3][1] == pytest.approx(0.81) and plan[3][2] == pytest.approx(0.1 + 0.19)
    # the threshold alone: 0.1 + 0.19 > 0.2 stops the second skip
    assert [s for s, _, _ in skip_plan(ratios, 0.2, 9, 0.2)][:5] == [False, False, True, False, True]
    assert not any(s for s, _, _ in skip_plan(ratios, 0.0, 9, 0.0)[2:8])  # threshold 0 never skips a moving curve


def test_curve_resampling_keeps_the_total_magnitude():
    curve = MagnitudeCurve({"family": "flux", "blocks": 12}, 20, [list(np.linspace(1.2, 0.9, 20))])
    assert curve.for_steps(20) == curve.ratios[0]
    for steps in (8, 33):
        resampled = curve.for_steps(steps)
        assert len(resampled) == steps and resampled[0] == 1.0
        assert np.prod(resampled) == pytest.approx(np.prod(curve.ratios[0][1:]), rel=1e-9)


def test_calibration_measures_one_ratio_per_step(curve, flux_pipe):
    assert curve.steps == STEPS and len(curve.ratios) == 1 and len(curve.ratios[0]) == STEPS
    assert curve.ratios[0][0] == 1.0 and all(0.3 < r < 3.0 for r in curve.ratios[0])
    assert len(set(np.round(curve.ratios[0], 4))) > 5  # measured, not a constant
    assert curve.model == ppcache.apply_cache(flux_pipe, ppcache.TeaCacheConfig()).adapter.identity()
    ppcache.remove_cache(flux_pipe)
    again = MagnitudeCurve.from_mapping(json.loads(json.dumps(curve.to_mapping())), "cache.calibration")
    assert again.ratios[0] == pytest.approx(curve.ratios[0], abs=1e-6) and again.model == curve.model


def test_magcache_skips_what_its_plan_says_without_a_host_read(curve, flux_pipe, reference, monkeypatch):
    def no_read(self, values):
        raise AssertionError("MagCache read a device value to decide")

    monkeypatch.setattr(CallState, "read", no_read)
    config = ppcache.MagCacheConfig(threshold=0.3, max_skip_steps=2, calibration=curve.to_mapping())
    image, stats = run(flux_pipe, config)
    plan = skip_plan(curve.ratios[0], 0.3, 2, 0.2)
    assert skipped_steps(stats) == [step for step, (skip, _, _) in enumerate(plan) if skip] != []
    assert stats["compute_fraction"] == pytest.approx(simulate_magcache(curve, STEPS, [0.3], 2, 0.2)[0.3])
    assert ssim(image, reference) > 0.95


def test_magcache_extrapolation_and_magnitude_scaling_change_only_the_prediction(curve, flux_pipe, reference):
    base = dict(threshold=0.3, max_skip_steps=2, calibration=curve.to_mapping())
    images, skipped = {}, {}
    for name, extra in (("reuse", {}), ("linear", {"order": 1}), ("scaled", {"scale_residual": True})):
        images[name], stats = run(flux_pipe, ppcache.MagCacheConfig(**base, **extra))
        skipped[name] = skipped_steps(stats)
        assert ssim(images[name], reference) > 0.95, name
    assert skipped["reuse"] and skipped["reuse"] == skipped["linear"] == skipped["scaled"]
    assert not np.array_equal(images["reuse"], images["linear"])
    assert not np.array_equal(images["reuse"], images["scaled"])


def test_magcache_resamples_its_curve_for_another_step_count(curve, flux_pipe):
    image, stats = run(flux_pipe, ppcache.MagCacheConfig(threshold=0.3, max_skip_steps=2,
                                                         calibration=curve.to_mapping()), steps=12)
    assert stats["steps"] == 12 and stats["compute_fraction"] < 1.0
    assert ssim(image, uncached(flux_pipe, steps=12)) > 0.9


def test_magcache_refuses_a_curve_of_another_model_in_one_line(curve, flux_pipe, sd3_pipe):
    config = ppcache.MagCacheConfig(calibration=curve.to_mapping())
    with pytest.raises(ConfigError) as info:
        ppcache.apply_cache(sd3_pipe, config)
    message = str(info.value)
    assert "measured on a flux transformer with 12 blocks" in message and "sd3" in message
    assert "calibrate_magcache.py" in message and "\n" not in message
    assert ppcache.api.engine_of(sd3_pipe) is None  # nothing was installed
    other = dict(curve.to_mapping(), model=dict(curve.model, blocks=57))
    with pytest.raises(ConfigError, match="57 blocks"):
        ppcache.apply_cache(flux_pipe, ppcache.MagCacheConfig(calibration=other))
    assert ppcache.api.engine_of(flux_pipe) is None


def test_magcache_calibrates_and_skips_on_sd3(sd3_pipe):
    # SD3 runs its guidance as one batch of two: one branch, decided for the batch as a whole
    curve = calibrate_magcache(sd3_pipe, [CASE], 10)
    assert curve.model["family"] == "sd3" and len(curve.ratios) == 1
    _, stats = run(sd3_pipe, ppcache.MagCacheConfig(threshold=0.3, max_skip_steps=2, calibration=curve.to_mapping()),
                   steps=10)
    assert 0 < stats["compute_fraction"] < 1.0 and stats["model_family"] == "sd3"


def test_magcache_without_a_calibration_names_the_tool():
    with pytest.raises(ConfigError, match="calibrate_magcache.py"):
        ppcache.apply_cache(paddle.nn.Layer(), ppcache.MagCacheConfig())


@pytest.mark.parametrize("settings, match", [
    ({"threshold": 1.5}, "threshold must be between 0 and 1"),
    ({"threshold": -0.1}, "threshold must be between 0 and 1"),
    ({"max_skip_steps": 0}, "max_skip_steps must be >= 1"),
    ({"retention_ratio": 1.0}, r"retention_ratio must be in \[0, 1\)"),
    ({"calibration": {"model": {"family": "flux", "blocks": 12}, "steps": 3, "ratios": [[1.0, 1.1]]}},
     "one list of 3 positive numbers"),
    ({"calibration": {"steps": 3}}, "must hold model, steps and ratios"),
])
def test_magcache_settings_out_of_range_are_one_line_errors(settings, match):
    with pytest.raises(ConfigError, match=match) as info:
        ppcache.config.build_cache_section(dict({"method": "magcache"}, **settings))
    assert "\n" not in str(info.value)


def test_magcache_reads_a_calibration_file_beside_its_config(tmp_path, curve, flux_pipe):
    (tmp_path / "curve.json").write_text(json.dumps(curve.to_mapping()))
    (tmp_path / "magcache.yaml").write_text("cache:\n  method: magcache\n  threshold: 0.3\n  calibration: curve.json\n")
    config = ppcache.load_config(str(tmp_path / "magcache.yaml"))
    _, stats = run(flux_pipe, config.cache)
    assert stats["compute_fraction"] < 1.0
    (tmp_path / "broken.json").write_text("{not json")
    for name, match in (("missing.json", "calibration file not found"), ("broken.json", "not a MagCache calibration")):
        with pytest.raises(ConfigError, match=match):
            ppcache.apply_cache(flux_pipe, ppcache.MagCacheConfig(calibration=str(tmp_path / name)))


# ---- EasyCache --------------------------------------------------------------------------------------------------
def test_easycache_skips_after_its_retained_steps_with_one_read_per_step(flux_pipe, reference, monkeypatch):
    reads = {}
    original = CallState.read

    def counted(self, values):
        reads[(self.ctx.step, self.ctx.branch)] = reads.get((self.ctx.step, self.ctx.branch), 0) + 1
        return original(self, values)

    monkeypatch.setattr(CallState, "read", counted)
    image, stats = run(flux_pipe, ppcache.EasyCacheConfig(threshold=0.2, retention_ratio=0.2))
    skipped = skipped_steps(stats)
    assert skipped and min(skipped) >= 4  # the first 0.2 x 20 steps are computed
    assert max(reads.values()) == 1 and min(step for step, _ in reads) >= 4
    assert 0.3 < stats["compute_fraction"] < 0.9 and ssim(image, reference) > 0.97


def test_easycache_threshold_zero_computes_everything_and_caps_hold(flux_pipe):
    _, stats = run(flux_pipe, ppcache.EasyCacheConfig(threshold=0.0))
    assert skipped_steps(stats) == [] and stats["compute_fraction"] == 1.0
    _, stats = run(flux_pipe, ppcache.EasyCacheConfig(threshold=1.0, max_skip_steps=2))
    skipped = set(skipped_steps(stats))
    assert skipped and not any({s, s + 1, s + 2} <= skipped for s in skipped)  # never three in a row
    _, wide = run(flux_pipe, ppcache.EasyCacheConfig(threshold=1.0))
    assert len(skipped_steps(wide)) > len(skipped)


def test_easycache_settings_out_of_range_are_one_line_errors():
    for settings, match in (({"threshold": 2.0}, "threshold must be between 0 and 1"),
                            ({"max_skip_steps": 0}, "or -1 for no cap"), ({"order": 5}, "order must be between")):
        with pytest.raises(ConfigError, match=match):
            ppcache.config.build_cache_section(dict({"method": "easycache"}, **settings))


# ---- the calibration tool ---------------------------------------------------------------------------------------
def test_calibrate_magcache_writes_a_config_that_reproduces_its_table(tmp_path, capsys, flux_pipe):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
    import calibrate_magcache

    out = tmp_path / "magcache.yaml"
    assert calibrate_magcache.main(["--steps", "10", "--threshold", "0.2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("| 0.2 |"))
    config = ppcache.load_config(str(out))
    assert config.cache.method == "magcache" and config.cache.calibration["steps"] == 10
    _, stats = run(flux_pipe, config.cache, steps=10, prompt="a photo of an astronaut")
    assert stats["compute_fraction"] == pytest.approx(float(row.split("|")[2]), abs=1e-3)
    assert calibrate_magcache.main(["--threshold", "3", "--out", str(tmp_path / "bad.yaml")]) == 2
    assert "threshold must be between 0 and 1" in capsys.readouterr().err and not (tmp_path / "bad.yaml").exists()
