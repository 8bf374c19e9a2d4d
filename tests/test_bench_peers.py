"""Peers side by side (ppcache.bench.peers): diffusers/cache-dit on the same weights, embeddings and noise.

CI installs the `parity` extra (`pip install -e ".[cpu,test,parity]"`), so these tests run there; nothing is
skipped when torch, diffusers or cache-dit is missing: the peer tests then fail on the one-line install error.
"""
import sys

import numpy as np
import pytest

from ppcache.bench import peers
from ppcache.bench.peer_families import FluxPeer, flux_block_weights
from ppcache.errors import ConfigError, PPCacheError
from ppcache.bench.evaluate import sample

STEPS = 6
CASES = [("a photo of a flower", 3)]
# Thresholds high enough that a 6-step run skips blocks with either framework.
CONFIGS = [
    peers.PeerConfig("cache-dit DBCache+TaylorSeer rdt=0.5", "cache-dit", "DBCache+TaylorSeer", 0.5, 1),
    peers.PeerConfig("diffusers FirstBlockCache t=0.5", "diffusers", "FirstBlockCache", 0.5),
    # computes steps 0-2 and 4; predicts the attention of steps 3 and 5, while every MLP runs
    peers.PeerConfig("diffusers TaylorSeerCache N=2", "diffusers", "TaylorSeerCache", taylorseer_order=1, interval=2),
    peers.PeerConfig("diffusers MagCache t=0.5 K=2", "diffusers", "MagCache", 0.5, max_skip_steps=2),
]
KEYS = {"name", "framework", "method", "compute_fraction", "ssim", "psnr", "speedup"}


@pytest.fixture(scope="module")
def references(flux_pipe):
    return [sample(flux_pipe, prompt, seed, STEPS)[0] for prompt, seed in CASES]


@pytest.fixture(scope="module")
def rows(bundled_flux, references):
    import torch

    threads = torch.get_num_threads()
    result = peers.peer_rows(bundled_flux, CASES, STEPS, references, configs=CONFIGS)
    assert torch.get_num_threads() == threads  # the run's own thread count is restored
    return result


def test_uncached_peer_reproduces_the_ppcache_reference(rows):
    parity = rows[0]
    assert parity["name"] == peers.UNCACHED_NAME and parity["parity"] is True
    assert parity["ssim"] >= 0.99
    assert parity["max_abs_diff"] < 1e-3
    assert parity["compute_fraction"] == 1.0 and parity["blocks_fraction"] == 1.0
    assert parity["steps_computed"] == STEPS and parity["blocks_computed"] > STEPS


def test_cached_peers_skip_blocks_and_report_the_schema(rows, references):
    assert [row["name"] for row in rows[1:]] == [config.name for config in CONFIGS]
    assert {row["framework"] for row in rows[1:]} == {"cache-dit", "diffusers"}
    for row in rows[1:]:
        assert KEYS <= set(row)
        assert row["threads"] == peers.paddle_threads()  # timed like ppcache's Paddle runs
        assert 0.0 < row["compute_fraction"] < 1.0, row["name"]
        assert row["steps_computed"] < STEPS  # some step skipped blocks
        assert row["blocks_computed"] == pytest.approx(row["blocks_fraction"] * rows[0]["blocks_computed"])
        assert row["speedup_min"] <= row["speedup"] <= row["speedup_max"] and row["ssim_min"] <= row["ssim"]
        assert row["speedup"] > 0 and np.isfinite(row["speedup"])
        assert 0.0 < row["ssim"] < 1.0  # the cache changed the image, and quality is measured against ppcache
        assert len(row["images"]) == len(CASES) and row["images"][0].shape == references[0].shape


def test_taylorseer_peer_counts_attention_and_mlps_apart(rows, bundled_flux):
    row = rows[3]
    assert row["method"] == "TaylorSeerCache" and row["steps_computed"] == 4
    assert row["blocks_fraction"] == pytest.approx(4 / 6)  # attention ran at 4 of 6 steps
    # ... but the MLPs ran at all six: the compute fraction is the attention's share of 2 steps below 1
    weights = flux_block_weights(FluxPeer().build(__import__("diffusers"), bundled_flux).transformer, 256, 16)
    attention = sum(w["attn"] for w in weights) / sum(sum(w.values()) for w in weights)
    assert row["compute_fraction"] == pytest.approx(1 - attention * 2 / 6, rel=1e-6)


def test_diffusers_magcache_on_ppcaches_curve_skips_the_steps_ppcache_skips(rows, flux_pipe, references):
    # the peer ran on ppcache's calibration of the first case; ppcache's MagCache with the paper's settings (reuse,
    # the same threshold, K and retention) on that curve must skip the same steps and give the same image
    import ppcache
    from ppcache.bench.calibration import calibrate_magcache
    from ppcache.bench.metrics import ssim

    row = rows[-1]
    assert row["method"] == "MagCache" and 1 <= row["steps_computed"] < STEPS
    curve = calibrate_magcache(flux_pipe, CASES[:1], STEPS)
    ppcache.apply_cache(flux_pipe, ppcache.MagCacheConfig(threshold=0.5, max_skip_steps=2, retention_ratio=0.2,
                                                          calibration=curve.to_mapping()))
    try:
        image = sample(flux_pipe, *CASES[0], STEPS)[0]
        stats = ppcache.summary(flux_pipe)
    finally:
        ppcache.remove_cache(flux_pipe)
    assert stats["full_steps"] == row["steps_computed"]
    assert ssim(image, row["images"][0]) > 0.999
    assert row["ssim"] == pytest.approx(ssim(image, references[0]), abs=1e-3)


def test_peer_configs_cover_every_framework_across_budgets():
    methods = {(config.framework, config.method) for config in peers.PEER_CONFIGS}
    assert methods == {("cache-dit", "DBCache"), ("cache-dit", "DBCache+TaylorSeer"),
                       ("diffusers", "FirstBlockCache"), ("diffusers", "TaylorSeerCache"), ("diffusers", "MagCache")}
    assert len({config.name for config in peers.PEER_CONFIGS}) == len(peers.PEER_CONFIGS)
    thresholds = [c.threshold for c in peers.PEER_CONFIGS if c.method == "DBCache+TaylorSeer"]
    assert min(thresholds) <= 0.12 and max(thresholds) >= 0.8


@pytest.mark.parametrize("module", ["torch", "diffusers", "cache_dit"])
def test_missing_parity_extra_is_a_one_line_error(monkeypatch, bundled_flux, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(PPCacheError) as info:
        peers.peer_rows(bundled_flux, CASES, STEPS, [np.zeros((32, 32, 3))])
    message = str(info.value)
    assert "\n" not in message
    assert 'pip install -e ".[parity]"' in message
    assert module.replace("_", "-") in message
    assert isinstance(info.value, ImportError)


def test_references_must_match_cases(bundled_flux):
    with pytest.raises(ConfigError, match="reference"):
        peers.peer_rows(bundled_flux, CASES, STEPS, [])


PIXART_CONFIGS = [
    peers.PeerConfig("cache-dit DBCache rdt=0.3", "cache-dit", "DBCache", 0.3),
    peers.PeerConfig("diffusers FirstBlockCache t=0.3", "diffusers", "FirstBlockCache", 0.3),
    peers.PeerConfig("diffusers TaylorSeerCache N=2", "diffusers", "TaylorSeerCache", taylorseer_order=1, interval=2),
    peers.PeerConfig("diffusers MagCache t=0.5 K=2", "diffusers", "MagCache", 0.5, max_skip_steps=2),
]


def test_peers_on_a_pixart_directory(tmp_path):
    """diffusers' PixArtAlphaPipeline on a PixArt-α directory (train_tiny's recipe, a few iterations), fed
    ppcache's T5 embeddings and noise: the uncached run reproduces ppcache's image, and each peer (cache-dit's
    PixArt adapter, diffusers' hooks on PixArt's blocks) skips work and changes the image."""
    from test_train_tiny import TOY  # train_tiny's smallest run (and tools/ on the path)

    import train_tiny
    from ppcache.pipelines.loading import load_pipeline

    out = tmp_path / "pixart"
    train_tiny.main(["--arch", "pixart", "--out", str(out), "--self-guidance", "1"] + TOY)
    pipe = load_pipeline(str(out))
    references = [sample(pipe, prompt, seed, STEPS)[0] for prompt, seed in CASES]
    rows = peers.peer_rows(str(out), CASES, STEPS, references, configs=PIXART_CONFIGS, ppcache_pipe=pipe)
    assert rows[0]["parity"] and rows[0]["max_abs_diff"] < 2e-2 and rows[0]["ssim"] > 0.999
    assert [row["method"] for row in rows[1:]] == ["DBCache", "FirstBlockCache", "TaylorSeerCache", "MagCache"]
    for row in rows[1:]:
        assert 0.0 < row["compute_fraction"] < 1.0, row["name"]
        assert 0.0 < row["ssim"] < 1.0, row["name"]


def test_peer_models_load_single_and_sharded_directories_and_refuse_missing_tensors(tmp_path):
    import torch
    from diffusers import AutoencoderKL

    from ppcache.bench.peer_families import from_directory

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=[8], norm_num_groups=4, latent_channels=4)
    vae.save_pretrained(tmp_path / "single")
    vae.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "diffusion_pytorch_model.safetensors.index.json").exists()
    for name in ("single", "sharded"):
        loaded = from_directory(AutoencoderKL, str(tmp_path / name))
        assert not loaded.training
        for key, value in vae.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), (name, key)
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp_path / "single" / "diffusion_pytorch_model.safetensors"))
    weights.pop(sorted(weights)[0])
    save_file(weights, str(tmp_path / "single" / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(PPCacheError, match="lack 1 tensor"):
        from_directory(AutoencoderKL, str(tmp_path / "single"))
