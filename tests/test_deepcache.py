"""DeepCache on a tiny random PPDiffusers StableDiffusionPipeline (UNet2DConditionModel) on CPU."""
import math
import warnings

import numpy as np
import pytest

import ppcache  # noqa: F401  (shims; must come before ppdiffusers)
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
from ppcache import ConfigError, DeepCacheConfig, SortBlockConfig, UnsupportedModelError  # noqa: E402
from ppcache.adapters.unet import UNetAdapter, UNetBlockIO, _BlockCost  # noqa: E402
from ppcache.models.tiny_tokenizers import write_clip_tokenizer  # noqa: E402

STEPS = 7
# Engine blocks of the tiny UNet: down 0 (cross-attn), down 1, mid (2), up 0 (3), up 1 (4, cross-attn).
ALL = [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from ppdiffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from ppdiffusers.transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    paddle.seed(0)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=8)
    # 2 VAE blocks -> vae_scale_factor 2: 32x32 images use 16x16 latents.
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 8], layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=32)
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(str(tmp_path_factory.mktemp("clip"))))
    text_encoder = CLIPTextModel(CLIPTextConfig(  # 514 = byte-level vocab of write_clip_tokenizer
        vocab_size=514, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513))
    scheduler = DDIMScheduler(steps_offset=1, clip_sample=False, set_alpha_to_one=False)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def run(pipe, steps=STEPS, seed=0):
    return pipe("a photo of a cat", num_inference_steps=steps, height=32, width=32, guidance_scale=5.0,
                output_type="np", generator=paddle.Generator().manual_seed(seed)).images


@pytest.fixture(scope="module")
def reference(pipe):
    ppcache.remove_cache(pipe)
    return run(pipe)


def apply(pipe, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the block-granularity note for layer_id 0
        return ppcache.apply_cache(pipe, DeepCacheConfig(**kwargs))


def test_schedule_and_compute_fraction(pipe, reference):
    try:
        apply(pipe, cache_interval=3, cache_branch_id=0)
        out = run(pipe)
        stats = ppcache.summary(pipe)
        assert stats["method"] == "deepcache" and stats["model_family"] == "unet" and stats["num_blocks"] == 5
        assert stats["steps"] == STEPS and stats["calls"] == STEPS  # batched CFG: one UNet call per step
        for record in stats["per_step"]:
            if record["step"] % 3 == 0:  # full steps 0, 3, 6
                assert record["computed"] == ALL and record["predicted"] == []
            else:  # shallow path only: down 0 and up 1 run, down 1 / mid / up 0 return their cached outputs
                assert record["computed"] == [0, 4] and record["predicted"] == [1, 2, 3]
        assert stats["full_steps"] == 3 and stats["fallbacks"] == 0
        per_call = stats["per_step"][1]
        assert 0 < stats["compute_fraction"] < 1
        assert stats["compute_fraction"] == pytest.approx((3 + 4 * per_call["macs_run"] / per_call["macs_full"]) / 7)
        assert np.isfinite(out).all() and not np.array_equal(out, reference)

        apply(pipe, cache_interval=2, cache_branch_id=3)  # block 1: only the mid block is cached
        run(pipe)
        records = ppcache.summary(pipe)["per_step"]
        assert [r["predicted"] for r in records] == [[], [2], [], [2], [], [2], []]
        assert all(r["computed"] == [0, 1, 3, 4] for r in records if r["step"] % 2)
    finally:
        ppcache.remove_cache(pipe)


def test_layer_rounding_warns(pipe):
    try:
        with pytest.warns(UserWarning, match="DeepCache runs whole blocks: cache_branch_id 0"):
            ppcache.apply_cache(pipe, DeepCacheConfig(cache_branch_id=0))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # branch 1 = layer 1 of block 0: the tiny up block has 2 resnets, exact
            ppcache.apply_cache(pipe, DeepCacheConfig(cache_branch_id=1))
    finally:
        ppcache.remove_cache(pipe)


def test_removal_restores_model_and_output(pipe, reference):
    unet = pipe.unet
    originals = list(unet.down_blocks) + [unet.mid_block] + list(unet.up_blocks)
    keys = list(unet.state_dict().keys())
    apply(pipe, cache_interval=3)
    assert type(unet.mid_block).__name__ == "CachedBlock"
    run(pipe)
    assert ppcache.remove_cache(pipe)
    assert list(unet.down_blocks) + [unet.mid_block] + list(unet.up_blocks) == originals
    assert all(a is b for a, b in zip(list(unet.down_blocks) + [unet.mid_block] + list(unet.up_blocks), originals))
    assert "forward" not in unet.__dict__ and "_ppcache_engine" not in unet.__dict__
    assert "step" not in pipe.scheduler.__dict__ and "set_timesteps" not in pipe.scheduler.__dict__
    assert list(unet.state_dict().keys()) == keys
    np.testing.assert_array_equal(run(pipe), reference)


def test_generations_are_independent(pipe):
    try:
        apply(pipe, cache_interval=3, cache_branch_id=0)
        first = run(pipe)
        run(pipe, steps=5, seed=1)  # a different generation in between: nothing leaks into the next
        second = run(pipe)
        apply(pipe, cache_interval=3, cache_branch_id=0)  # fresh engine
        fresh = run(pipe)
    finally:
        ppcache.remove_cache(pipe)
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(fresh, first)


def test_interval_one_is_exact(pipe, reference):
    try:
        apply(pipe, cache_interval=1, cache_branch_id=0)
        out = run(pipe)
        stats = ppcache.summary(pipe)
    finally:
        ppcache.remove_cache(pipe)
    np.testing.assert_array_equal(out, reference)
    assert stats["full_steps"] == STEPS and stats["compute_fraction"] == 1.0


def test_bad_configs(pipe):
    cases = [
        (DeepCacheConfig(cache_interval=0), "cache.cache_interval must be >= 1"),
        (DeepCacheConfig(cache_branch_id=-1), "cache.cache_branch_id must be >= 0"),
        (DeepCacheConfig(cache_interval=2.5), "cache.cache_interval must be int"),
        ({"method": "deepcache", "cache_interval": "3"}, "cache.cache_interval must be int"),
        ({"method": "deepcache", "interval": 3}, "unknown key cache.interval"),
        (DeepCacheConfig(cache_branch_id=6), "cache_branch_id 6 selects block 2, .* 2 down blocks: use 0..5"),
    ]
    for config, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            ppcache.apply_cache(pipe, config)
        assert "\n" not in str(info.value)
        assert ppcache.api.engine_of(pipe) is None and type(pipe.unet.mid_block).__name__ != "CachedBlock"


def test_other_methods_and_models_are_refused(pipe):
    with pytest.raises(UnsupportedModelError, match="'sortblock' cannot cache a UNet2DConditionModel .*deepcache"):
        ppcache.apply_cache(pipe, SortBlockConfig())
    assert ppcache.api.engine_of(pipe) is None
    from conftest import TINY_FLUX
    from ppcache.models import FluxTransformer2DModel

    with pytest.raises(UnsupportedModelError, match="'deepcache' cannot cache a FluxTransformer2DModel"):
        ppcache.apply_cache(FluxTransformer2DModel(**TINY_FLUX), DeepCacheConfig())


def test_sdxl_shaped_unet_alone():
    """An SDXL-style UNet (DownBlock2D first, text_time embedding, 2 transformer layers) driven by hand."""
    from ppdiffusers import UNet2DConditionModel

    paddle.seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2), attention_head_dim=(2, 4), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=8).eval()
    x, text = paddle.randn([2, 4, 8, 8]), paddle.randn([2, 7, 64])
    added = {"text_embeds": paddle.randn([2, 32]), "time_ids": paddle.randn([2, 6])}
    timesteps = [900, 700, 500, 300, 100]

    def sample():
        with paddle.no_grad():
            return [unet(x, paddle.to_tensor(t), text, added_cond_kwargs=added).sample.numpy() for t in timesteps]

    reference = sample()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # branch 2: whole block 0 is the paper's own granularity here
        ppcache.apply_cache(unet, DeepCacheConfig(cache_interval=2, cache_branch_id=2))
    try:
        with ppcache.generation(unet, num_steps=len(timesteps)) as gen, paddle.no_grad():
            outs = []
            for i, t in enumerate(timesteps):
                gen.step(i, t)
                outs.append(unet(x, paddle.to_tensor(t), text, added_cond_kwargs=added).sample.numpy())
        records = ppcache.summary(unet)["per_step"]
    finally:
        ppcache.remove_cache(unet)
    assert [r["predicted"] for r in records] == [[], [1, 2, 3], [], [1, 2, 3], []]
    for step, (out, ref) in enumerate(zip(outs, reference)):
        assert np.array_equal(out, ref) == (step % 2 == 0)
    assert all(np.array_equal(a, b) for a, b in zip(sample(), reference))


def test_block_macs_match_the_layers(pipe):
    """The shapes-only estimate equals the Conv2D/Linear multiply-accumulates counted by hooks, plus the
    attention products."""
    adapter = UNetAdapter(pipe.unet)
    counted, inputs, hooks = {}, {}, []
    for index, (_, _, block) in enumerate(adapter.block_slots()):
        counted[index] = 0
        for layer in block.sublayers():
            if isinstance(layer, (nn.Conv2D, nn.Linear)):
                def hook(layer, args, out, index=index):
                    if isinstance(layer, nn.Conv2D):
                        inputs.setdefault(index, args[0].shape)
                    width = layer.weight.shape[0 if isinstance(layer, nn.Conv2D) else 1]
                    counted[index] += int(out.numel()) // width * math.prod(layer.weight.shape)
                hooks.append(layer.register_forward_post_hook(hook))
    text = paddle.randn([2, 7, 32])
    try:
        with paddle.no_grad():
            pipe.unet(paddle.randn([2, 4, 16, 16]), paddle.to_tensor(500), text)
    finally:
        for handle in hooks:
            handle.remove()
    for index, (_, _, block) in enumerate(adapter.block_slots()):
        batch, _, height, width = inputs[index]
        io = UNetBlockIO((paddle.zeros([batch, 1, height, width]),), None, text)
        cost = _BlockCost(block)
        tokens = height * width
        attention = batch * 2 * tokens * (cost.self_attention * tokens + cost.cross_attention * 7)
        assert adapter.block_macs(block, io) == counted[index] + attention
    assert _BlockCost(pipe.unet.down_blocks[0]).cross_attention == 32  # attn2 of the one transformer block


def test_yaml_example():
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "deepcache_sd.yaml")
    config = ppcache.load_config(path)
    assert isinstance(config.cache, DeepCacheConfig)
    assert (config.cache.cache_interval, config.cache.cache_branch_id) == (3, 0)
