"""max_compute_fraction: once a generation has spent its cap, every dynamic method skips wherever it has something
cached, and summary() counts the forced calls; static methods say that the cap does not apply to them."""
import pytest

from ppcache import apply_cache, remove_cache, summary
from ppcache.config import build_cache_section
from ppcache.errors import ConfigError
from ppcache.bench.evaluate import sample

STEPS = 8
# each method with its own gate shut (it would compute every step), so only the cap can make it skip
NEVER_SKIP = {
    "dbcache": dict(residual_diff_threshold=0.0, Fn_compute_blocks=1, Bn_compute_blocks=1),
    "firstblock_taylor": dict(threshold=0.0, warmup_steps=1),
    "teacache": dict(rel_l1_thresh=0.0),
    "teablockcache": dict(block_threshold=0.0, single_block_threshold=0.0),
    "sortblock": dict(step_num2=2, beta=1.0, timestep_start=1000.0, timestep_end=0.0),
}


def run(pipe, cache):
    apply_cache(pipe, cache)
    try:
        sample(pipe, "a photo of a cat", 0, STEPS)
        return summary(pipe)
    finally:
        remove_cache(pipe)


@pytest.mark.parametrize("method", sorted(NEVER_SKIP))
def test_the_cap_forces_skips_once_the_budget_is_spent(flux_pipe, method):
    free = run(flux_pipe, dict(method=method, **NEVER_SKIP[method]))
    capped = run(flux_pipe, dict(method=method, max_compute_fraction=0.5, **NEVER_SKIP[method]))
    assert free["budget_forced_steps"] == 0
    assert capped["budget_forced_steps"] > 0
    assert capped["compute_fraction"] < min(0.75, free["compute_fraction"])
    per_step = capped["per_step"]
    first_forced = min(c["step"] for c in per_step if c["over_budget"])
    # the cap fires only after half the full cost is spent, and then on every later call
    spent = sum(c["macs_run"] for c in per_step if c["step"] < first_forced)
    assert spent + per_step[0]["macs_full"] > 0.5 * capped["macs_full"] >= spent
    assert all(c["over_budget"] for c in per_step if c["step"] >= first_forced)


def test_a_whole_step_method_lands_on_the_cap_exactly(flux_pipe):
    capped = run(flux_pipe, dict(method="teacache", rel_l1_thresh=0.0, max_compute_fraction=0.5))
    assert capped["compute_fraction"] == pytest.approx(0.5)
    assert capped["budget_forced_steps"] == STEPS // 2


def test_a_static_method_says_the_cap_has_no_effect(flux_pipe):
    with pytest.warns(UserWarning, match="max_compute_fraction has no effect"):
        capped = run(flux_pipe, dict(method="fora", interval=2, max_compute_fraction=0.3))
    assert capped["compute_fraction"] > 0.3 and capped["budget_forced_steps"] == 0
    assert any("max_compute_fraction has no effect" in n for n in capped["notices"])


@pytest.mark.parametrize("value", [0, -0.2, 1.5])
def test_a_cap_outside_zero_to_one_is_a_config_error(value):
    with pytest.raises(ConfigError, match=r"cache.max_compute_fraction must be in \(0, 1\]"):
        build_cache_section(dict(method="dbcache", max_compute_fraction=value))
