"""Compiled block math (ppcache.compile_blocks): same images and decisions as eager, clean undo, refusals."""
import os

import numpy as np
import paddle
import pytest

import ppcache
from ppcache.api import engine_of
from ppcache.compiled import is_compiled
from ppcache.config import load_config

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def sample(pipe, steps=6, seed=0):
    out = pipe(prompt="a red circle", num_inference_steps=steps, height=32, width=32,
               generator=paddle.Generator().manual_seed(seed), output_type="np")
    return np.asarray(out.images)


def decisions(pipe):
    return [[c.step, c.branch, c.computed, c.predicted, c.fallback] for c in engine_of(pipe).stats.calls]


def blocks(pipe):
    transformer = pipe.transformer
    return list(transformer.transformer_blocks) + list(transformer.single_transformer_blocks)


@pytest.fixture
def pipe(flux_pipe):
    ppcache.remove_cache(flux_pipe)
    ppcache.uncompile_blocks(flux_pipe)
    yield flux_pipe
    ppcache.remove_cache(flux_pipe)
    ppcache.uncompile_blocks(flux_pipe)


def cached_run(pipe, config):
    ppcache.apply_cache(pipe, load_config(os.path.join(CONFIGS, config)).cache)
    image = sample(pipe, steps=16)
    log, fraction = decisions(pipe), ppcache.summary(pipe)["compute_fraction"]
    ppcache.remove_cache(pipe)
    return image, log, fraction


def test_compiled_blocks_give_the_eager_image_and_undo_cleanly(pipe):
    eager = sample(pipe)
    assert ppcache.compile_blocks(pipe) == len(blocks(pipe))
    assert all(is_compiled(block) for block in blocks(pipe))
    assert all(isinstance(block.forward, paddle.jit.dy2static.program_translator.StaticFunction)
               for block in blocks(pipe))
    np.testing.assert_allclose(sample(pipe), eager, atol=1e-5)
    ppcache.uncompile_blocks(pipe)
    assert not any(is_compiled(block) or "forward" in block.__dict__ for block in blocks(pipe))
    np.testing.assert_array_equal(sample(pipe), eager)


@pytest.mark.parametrize("config", ["dbcache.yaml", "teacache.yaml"])
def test_cached_compiled_run_decides_as_eager(pipe, config):
    eager_image, eager_log, fraction = cached_run(pipe, config)
    assert fraction < 1.0
    ppcache.compile_blocks(pipe)
    image, log, compiled_fraction = cached_run(pipe, config)
    assert log == eager_log and compiled_fraction == fraction
    np.testing.assert_allclose(image, eager_image, atol=1e-4)
    assert all(is_compiled(block) for block in blocks(pipe)), "remove_cache must leave the compiled blocks"


def test_component_level_method_refused_on_compiled_blocks(pipe):
    ppcache.compile_blocks(pipe)
    with pytest.raises(ppcache.PPCacheError, match="pab caches parts of blocks"):
        ppcache.apply_cache(pipe, load_config(os.path.join(CONFIGS, "pab.yaml")).cache)
    ppcache.uncompile_blocks(pipe)
    ppcache.apply_cache(pipe, load_config(os.path.join(CONFIGS, "pab.yaml")).cache)
    with pytest.raises(ppcache.PPCacheError, match="pab caches parts of blocks"):
        ppcache.compile_blocks(pipe)
    assert not any(is_compiled(block) for block in blocks(pipe))


def test_compile_refused_under_sequence_parallelism(pipe, monkeypatch):
    monkeypatch.setattr(pipe.transformer, "sequence_parallel", object(), raising=False)
    with pytest.raises(ppcache.PPCacheError, match="not supported with parallel.sequence"):
        ppcache.compile_blocks(pipe)
