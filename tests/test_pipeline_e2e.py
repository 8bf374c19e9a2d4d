"""The bundled tiny FLUX pipeline end to end: determinism, call independence, prompt following, difficulty."""
import numpy as np
import paddle
import pytest

from ppcache.metrics import mean_quality
from ppcache.pipelines.loading import load_pipeline
from ppcache.tiny.report import DEFAULT_STEPS, generate


def sample(pipe, prompt, seed=0, steps=6, **kwargs):
    out = pipe(prompt=prompt, num_inference_steps=steps, generator=paddle.Generator().manual_seed(seed),
               output_type="np", height=kwargs.pop("height", 32), width=kwargs.pop("width", 32), **kwargs)
    return np.asarray(out.images)


def test_same_seed_same_image(flux_pipe):
    a = sample(flux_pipe, "a photo of a cat", seed=3)
    b = sample(flux_pipe, "a photo of a cat", seed=3)
    c = sample(flux_pipe, "a photo of a cat", seed=4)
    assert a.shape == (1, 32, 32, 3) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.05


def test_two_calls_in_a_row_equal_fresh_runs(bundled_flux, flux_pipe):
    first = sample(flux_pipe, "a rocket", seed=1, steps=5)
    second = sample(flux_pipe, "a retina", seed=2, steps=7, height=48, width=32)
    fresh = load_pipeline(bundled_flux)
    fresh.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(sample(fresh, "a retina", seed=2, steps=7, height=48, width=32), second)
    assert second.shape == (1, 48, 32, 3)
    np.testing.assert_array_equal(sample(fresh, "a rocket", seed=1, steps=5), first)


def test_batch_and_true_cfg(flux_pipe):
    batch = sample(flux_pipe, ["a cat", "the moon"], seed=0, steps=4)
    assert batch.shape == (2, 32, 32, 3)
    guided = sample(flux_pipe, "a cat", seed=0, steps=4, true_cfg_scale=3.0, negative_prompt="")
    plain = sample(flux_pipe, "a cat", seed=0, steps=4)
    assert np.isfinite(guided).all() and np.abs(guided - plain).max() > 0.01


def test_images_follow_prompts(flux_pipe):
    """Dark galaxy fields, light paper for digits, colourful colour wheels, grey moons."""
    seeds = range(4)
    galaxy = np.stack([sample(flux_pipe, "a photo of a galaxy field", s)[0] for s in seeds])
    digits = np.stack([sample(flux_pipe, f"a handwritten digit {d}", s)[0] for d, s in zip((1, 4, 7, 8), seeds)])
    wheel = np.stack([sample(flux_pipe, "a photo of a colour wheel", s)[0] for s in seeds])
    moon = np.stack([sample(flux_pipe, "a photo of the moon", s)[0] for s in seeds])
    assert galaxy.mean() < 0.25 < 0.6 < digits.mean()
    saturation = lambda x: (x.max(-1) - x.min(-1)).mean()  # noqa: E731
    assert saturation(wheel) > 0.3 > 0.1 > saturation(moon)


def test_half_the_steps_visibly_hurts(flux_pipe):
    """The bundled model must be hard enough to rank cache methods: 10 of 20 steps lands at SSIM <= 0.95."""
    from ppcache.tiny.dataset import default_prompts

    prompts = default_prompts()[::3]
    seeds = list(range(len(prompts)))
    full = generate(flux_pipe, prompts, DEFAULT_STEPS, seeds)
    half = generate(flux_pipe, prompts, DEFAULT_STEPS // 2, seeds)
    ssim, psnr = mean_quality(half, full)
    assert ssim <= 0.95, ssim
    assert mean_quality(full, full)[0] == pytest.approx(1.0)
