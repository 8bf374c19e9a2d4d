"""The bundled trained tiny-pixart (PixArtAlphaPipeline on the installed PPDiffusers): it draws its prompts, caches
with the shipped configs and restores bit for bit."""
import os

import numpy as np
import pytest

import ppcache
from ppcache.config import load_config, resolve_model_path
from ppcache.bench.evaluate import sample
from ppcache.bench.metrics import ssim

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
STEPS = 20


@pytest.fixture(scope="module")
def pixart():
    from ppcache.pipelines.loading import load_pipeline

    path = resolve_model_path("tiny-pixart")
    assert os.path.exists(os.path.join(path, "model_index.json")), "the bundled tiny-pixart model is missing"
    pipe = load_pipeline(path)
    assert type(pipe).__name__ == "PixArtAlphaPipeline"
    reference = sample(pipe, "a photo of a cat", 0, STEPS)[0]
    return pipe, reference


def test_trained_model_follows_its_prompts(pixart):
    pipe, cat = pixart
    digit = sample(pipe, "a handwritten digit 3", 0, STEPS)[0]
    assert cat.shape == (32, 32, 3)
    assert digit.mean() > cat.mean() + 0.2  # digits are dark strokes on white; the cat photo is not
    assert ssim(cat, digit) < 0.5


@pytest.mark.parametrize("config, most", [("fbcache.yaml", 0.6), ("teacache.yaml", 0.6), ("taylorseer.yaml", 0.6)])
def test_shipped_config_skips_work_keeps_the_image_and_restores(pixart, config, most):
    pipe, reference = pixart
    ppcache.apply_cache(pipe, load_config(os.path.join(CONFIGS, config)).cache)
    try:
        image = sample(pipe, "a photo of a cat", 0, STEPS)[0]
        fraction = ppcache.summary(pipe)["compute_fraction"]
    finally:
        assert ppcache.remove_cache(pipe)
    assert fraction <= most
    assert ssim(image, reference) > 0.97
    np.testing.assert_array_equal(sample(pipe, "a photo of a cat", 0, STEPS)[0], reference)
