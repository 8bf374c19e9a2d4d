"""The three methods on PPDiffusers' SD3 pipeline, whose CFG concatenates both branches in one batch."""
import numpy as np
import paddle
import pytest

import ppcache
from ppcache import FirstBlockTaylorConfig, SortBlockConfig, TeaBlockCacheConfig

METHODS = {
    "sortblock": SortBlockConfig(),
    "teablockcache": TeaBlockCacheConfig(step_gate=True),
    "firstblock_taylor": FirstBlockTaylorConfig(),
    "teacache": ppcache.TeaCacheConfig(),
    "fbcache": ppcache.DBCacheConfig(residual_diff_threshold=0.3),
    "dbcache": ppcache.DBCacheConfig(Fn_compute_blocks=2, Bn_compute_blocks=1, residual_diff_threshold=0.3,
                                     calibrator_order=1),
    "taylorseer": ppcache.TaylorSeerConfig(),
    "fora": ppcache.FORAConfig(),
    "blockdance": ppcache.BlockDanceConfig(),
    "pab": ppcache.PABConfig(),
    "tgate": ppcache.TGateConfig(gate_step=6),
}


def sample(pipe, guidance_scale=1.0, steps=12):
    out = pipe(prompt="a photo of a cat", num_inference_steps=steps, guidance_scale=guidance_scale, height=32,
               width=32, generator=paddle.Generator().manual_seed(0), output_type="np")
    return np.asarray(out.images)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_methods_on_sd3(sd3_pipe, name):
    ppcache.remove_cache(sd3_pipe)
    reference = sample(sd3_pipe)
    ppcache.apply_cache(sd3_pipe, METHODS[name])
    try:
        cached = sample(sd3_pipe)
        stats = ppcache.summary(sd3_pipe)
    finally:
        ppcache.remove_cache(sd3_pipe)
    assert stats["model_family"] == "sd3" and stats["steps"] == 12
    assert stats["compute_fraction"] < 0.95 and np.isfinite(cached).all()
    assert np.abs(cached - reference).mean() < 0.1
    np.testing.assert_array_equal(sample(sd3_pipe), reference)


def test_concatenated_cfg_batch_is_one_call_per_step(sd3_pipe):
    ppcache.remove_cache(sd3_pipe)
    reference = sample(sd3_pipe, guidance_scale=4.0)
    ppcache.apply_cache(sd3_pipe, SortBlockConfig())
    try:
        cached = sample(sd3_pipe, guidance_scale=4.0)
        stats = ppcache.summary(sd3_pipe)
    finally:
        ppcache.remove_cache(sd3_pipe)
    assert stats["calls"] == stats["steps"] == 12
    assert {c["branch"] for c in stats["per_step"]} == {0}
    assert np.isfinite(cached).all() and np.abs(cached - reference).mean() < 0.1


def test_last_sd3_block_returns_no_text_stream(sd3_pipe):
    """The context-pre-only last block returns (None, hidden); predicting it must keep that shape."""
    ppcache.apply_cache(sd3_pipe, FirstBlockTaylorConfig(threshold=10.0, warmup_steps=1))
    try:
        out = sample(sd3_pipe, steps=6)
        per_step = ppcache.summary(sd3_pipe)["per_step"]
    finally:
        ppcache.remove_cache(sd3_pipe)
    assert np.isfinite(out).all()
    assert any(c["computed"] == [0] for c in per_step)
