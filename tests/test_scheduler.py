"""Flow-match Euler scheduler with dynamic shift, against hand values and diffusers' implementation."""
import math

import numpy as np
import paddle
import pytest

from ppcache.pipelines.flow_match_scheduler import FlowMatchEulerDiscreteScheduler, calculate_shift

FLUX_DEV = dict(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                max_image_seq_len=4096)


def test_calculate_shift_endpoints():
    assert calculate_shift(256) == pytest.approx(0.5)
    assert calculate_shift(4096) == pytest.approx(1.15)
    assert calculate_shift(2176) == pytest.approx(0.825)


def test_flux_dev_reference_timesteps():
    """FLUX.1-dev at 1024x1024 (4096 tokens), 50 steps: t_12 = 909.1, t_13 = 899.9, t_48 = 116.3, t_49 = 60.6."""
    scheduler = FlowMatchEulerDiscreteScheduler(**FLUX_DEV)
    scheduler.set_timesteps(50, sigmas=np.linspace(1.0, 1 / 50, 50), mu=calculate_shift(4096))
    t = scheduler.timesteps.numpy()
    assert t[0] == pytest.approx(1000.0)
    for index, value in ((12, 909.1), (13, 899.9), (48, 116.3), (49, 60.6)):
        assert t[index] == pytest.approx(value, abs=0.05)
    assert scheduler.sigmas.numpy()[-1] == 0.0
    assert scheduler.timesteps_host == pytest.approx(list(t), abs=1e-3)


def test_static_shift_and_missing_mu():
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(4, sigmas=np.linspace(1, 0.25, 4))
    sigma = np.linspace(1, 0.25, 4)
    np.testing.assert_allclose(scheduler.sigmas.numpy()[:-1], 3 * sigma / (1 + 2 * sigma), rtol=1e-6)
    # Without sigmas (SD3 pipelines): evenly spaced in t down to the smallest training sigma, shifted once
    # (0.001 -> 0.003 / 1.002), then shifted again, as diffusers' scheduler does.
    scheduler.set_timesteps(4)
    sigma = np.linspace(1, 0.003 / 1.002, 4)
    np.testing.assert_allclose(scheduler.sigmas.numpy()[:-1], 3 * sigma / (1 + 2 * sigma), rtol=1e-6)
    with pytest.raises(ValueError, match="mu"):
        FlowMatchEulerDiscreteScheduler(**FLUX_DEV).set_timesteps(4)


def test_euler_step():
    scheduler = FlowMatchEulerDiscreteScheduler(**FLUX_DEV)
    scheduler.set_timesteps(3, mu=0.5)
    sigmas = scheduler.sigmas.numpy()
    x = paddle.ones([1, 2, 2])
    v = paddle.full([1, 2, 2], 2.0)
    out = scheduler.step(v, None, x)[0]
    np.testing.assert_allclose(out.numpy(), np.full([1, 2, 2], 1 + (sigmas[1] - sigmas[0]) * 2.0), rtol=1e-6)
    out = scheduler.step(v, None, out)[0]
    np.testing.assert_allclose(out.numpy(), np.full([1, 2, 2], 1 + (sigmas[2] - sigmas[0]) * 2.0), rtol=1e-6)
    assert math.isclose(float(sigmas[0]), 1.0)


def test_matches_diffusers():
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift as reference_shift

    ref = diffusers.FlowMatchEulerDiscreteScheduler(**FLUX_DEV)
    ours = FlowMatchEulerDiscreteScheduler(**FLUX_DEV)
    for steps, tokens in ((20, 64), (28, 1024), (50, 4096)):
        mu = calculate_shift(tokens)
        assert mu == pytest.approx(reference_shift(tokens))
        sigmas = np.linspace(1.0, 1 / steps, steps)
        ref.set_timesteps(sigmas=sigmas, mu=mu)
        ours.set_timesteps(steps, sigmas=sigmas, mu=mu)
        np.testing.assert_allclose(ours.timesteps.numpy(), ref.timesteps.numpy(), rtol=1e-5)
        np.testing.assert_allclose(ours.sigmas.numpy(), ref.sigmas.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("config", [dict(shift=3.0), dict(shift=1.5), FLUX_DEV])
def test_default_sigmas_match_diffusers(config):
    """With no sigmas passed (what SD3 pipelines do), the schedule is diffusers' default."""
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")

    mu = 0.8 if config.get("use_dynamic_shifting") else None
    for steps in (4, 20, 28):
        ref = diffusers.FlowMatchEulerDiscreteScheduler(**config)
        ref.set_timesteps(steps, mu=mu)
        ours = FlowMatchEulerDiscreteScheduler(**config)
        ours.set_timesteps(steps, mu=mu)
        np.testing.assert_allclose(ours.timesteps.numpy(), ref.timesteps.numpy(), rtol=1e-5)
        np.testing.assert_allclose(ours.sigmas.numpy(), ref.sigmas.numpy(), rtol=1e-5, atol=1e-7)
