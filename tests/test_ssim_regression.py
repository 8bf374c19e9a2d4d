"""CI regression: every shipped config keeps its SSIM (within 0.01) and compute fraction (within +0.02)."""
import pytest

from ppcache.bench import baselines


@pytest.fixture(scope="module")
def measured(flux_pipe):
    data = baselines.load_baselines()
    return data, baselines.measure(flux_pipe, baselines.shipped_configs(), data["steps"])


def test_every_shipped_config_has_a_baseline():
    data = baselines.load_baselines()
    missing = sorted(set(baselines.shipped_configs()) - set(data["configs"]))
    assert not missing, f"no SSIM baseline for {missing}: run python tools/update_baselines.py"
    assert len(data["cases"]) >= 8


@pytest.mark.long("the CI guard: every shipped config on the 8 baseline cases at 20 steps")
def test_quality_and_compute_hold(measured):
    data, results = measured
    failures = []
    for name, now in results.items():
        base = data["configs"][name]
        if now["ssim"] < base["ssim"] - data["ssim_tolerance"]:
            failures.append(f"{name}: SSIM {now['ssim']:.4f} < baseline {base['ssim']:.4f} - {data['ssim_tolerance']}")
        if now["compute_fraction"] > base["compute_fraction"] + data["compute_tolerance"]:
            failures.append(f"{name}: compute {now['compute_fraction']:.3f} > baseline "
                            f"{base['compute_fraction']:.3f} + {data['compute_tolerance']}")
    assert not failures, "; ".join(failures)
