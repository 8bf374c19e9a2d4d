"""Run in a subprocess with PPDiffusers from source first on the import path (see test_dit_families.py).

    python dit_families.py FAMILY[,FAMILY...] [CONFIG ...]

Builds a small random-weight transformer of each FAMILY (pixart, wan, hunyuan_video, cogvideox) from the installed
PPDiffusers' own classes and samples it with a flow-matching Euler loop under `ppcache.generation`. For each cache
config: whether it applies (or its one-line error), the compute fraction, the largest difference from the uncached
sample, whether a batch of two and then a run at another frame count / size, each after earlier generations, equal
fresh runs, and whether removal gives the uncached sample back bit for bit. The configs also include MagCache on
this model's own magnitude curve (CALIBRATED_MAGCACHE: calibrated here on the first sample, as
tools/calibrate_magcache.py does for a pipeline). Prints one JSON object {family: {"family": ..., "configs":
{config: row}}}.
"""
import json
import re
import sys

import numpy as np
import paddle

import ppcache
from ppcache.config import load_config
from ppcache.errors import PPCacheError

STEPS = 8
CALIBRATED_MAGCACHE = "MagCache, calibrated on this model"


def build(family):
    paddle.seed(0)
    if family == "pixart":
        from ppdiffusers.models.transformer_2d import Transformer2DModel

        # caption_channels is left out: the tree's CaptionProjection calls paddle.randn torch-style and fails to
        # build on Paddle 3.3; the blocks are PixArt's (adaLN-single, self + cross attention, MLP)
        model = Transformer2DModel(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=8,
                                   num_layers=7, cross_attention_dim=32, sample_size=8, patch_size=2,
                                   norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
                                   activation_fn="gelu-approximate", num_embeds_ada_norm=1000)

        def call(x, t, context):
            out = model(x, encoder_hidden_states=context, timestep=t, return_dict=False,
                        added_cond_kwargs={"resolution": None, "aspect_ratio": None})[0]
            return out[:, :4]  # PixArt predicts (noise, variance)
        return model, call, [4, 8, 8], [4, 12, 12], 32
    if family == "wan":
        from ppdiffusers.models.transformer_wan import WanTransformer3DModel

        model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4,
                                      out_channels=4, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=7,
                                      rope_max_seq_len=32)
        return model, lambda x, t, c: model(x, t, c, return_dict=False)[0], [4, 3, 8, 8], [4, 2, 8, 8], 32
    if family == "hunyuan_video":
        from ppdiffusers.models.transformer_hunyuan_video import HunyuanVideoTransformer3DModel

        model = HunyuanVideoTransformer3DModel(in_channels=4, out_channels=4, num_attention_heads=2,
                                               attention_head_dim=16, num_layers=2, num_single_layers=5,
                                               num_refiner_layers=1, mlp_ratio=2.0, patch_size=2, patch_size_t=1,
                                               text_embed_dim=32, pooled_projection_dim=16, rope_axes_dim=(4, 6, 6))

        def call(x, t, context):
            batch = x.shape[0]
            return model(x, t, context, paddle.ones([batch, context.shape[1]], "int64"), context[:, 0, :16],
                         guidance=paddle.full([batch], 3000.0), return_dict=False)[0]
        return model, call, [4, 3, 8, 8], [4, 2, 8, 8], 32
    if family == "cogvideox":
        from ppdiffusers.models.cogvideox_transformer_3d import CogVideoXTransformer3DModel

        model = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=16, in_channels=4,
                                            out_channels=4, time_embed_dim=32, text_embed_dim=32, num_layers=7,
                                            sample_width=8, sample_height=8, sample_frames=9, patch_size=2,
                                            temporal_compression_ratio=4, max_text_seq_length=7)
        return model, lambda x, t, c: model(x, c, t, return_dict=False)[0], [3, 4, 8, 8], [2, 4, 8, 8], 32
    raise SystemExit(f"unknown family {family!r}")


def smooth_in_time(model):
    """A trained DiT's modulation varies smoothly over the steps; random weights on the high-frequency sinusoid
    features of the timestep embedding make every step unlike the last, so no cache indicator could ever fire. Keep
    the random weights on the lowest-frequency quarter of the features only (in both sin and cos halves)."""
    for name, layer in model.named_sublayers():
        if re.search(r"(timestep_embedder|time_embedder|time_embedding)\.linear_1$", name):
            weight = layer.weight.numpy()  # [features, out]
            half = weight.shape[0] // 2
            keep = (np.arange(weight.shape[0]) % half) >= half - half // 4
            layer.weight.set_value(weight * keep[:, None].astype(weight.dtype))


def inputs(shape, text_dim, batch=1, seed=0):
    gen = np.random.default_rng(seed)
    latents = paddle.to_tensor(gen.standard_normal([batch] + shape).astype("float32"))
    context = paddle.to_tensor(gen.standard_normal([batch, 7, text_dim]).astype("float32"))
    return latents, context


def sample(model, call, latents, context, cached):
    timesteps = np.linspace(1000.0, 1000.0 / STEPS, STEPS)
    x = latents
    with (ppcache.generation(model, num_steps=STEPS) if cached else _nothing()) as gen:
        for i, t in enumerate(timesteps):
            if gen is not None:
                gen.step(i, float(t))
            v = call(x, paddle.full([x.shape[0]], float(t)), context)
            x = x - v * (1.0 / STEPS)
    return x.numpy()


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def magnitude_curve(model, call, latents, context):
    """MagCache's curve of this model, recorded on one uncached sample (ppcache.bench.calibration)."""
    from ppcache.bench.calibration import MagnitudeRecorder

    recorder = MagnitudeRecorder()
    ppcache.apply_cache(model, recorder)
    try:
        sample(model, call, latents, context, True)
    finally:
        ppcache.remove_cache(model)
    return recorder.curve(STEPS).to_mapping()


def run_family(family, config_paths):
    model, call, shape, other_shape, text_dim = build(family)
    smooth_in_time(model)
    model.eval()
    latents, context = inputs(shape, text_dim)
    pair = inputs(shape, text_dim, batch=2, seed=1)
    other = inputs(other_shape, text_dim, seed=2)
    with paddle.no_grad():
        reference = sample(model, call, latents, context, False)
        out = {"family": family, "configs": {}}
        magcache = ppcache.MagCacheConfig(threshold=0.5, max_skip_steps=2,
                                          calibration=magnitude_curve(model, call, latents, context))
        for path in list(config_paths) + [CALIBRATED_MAGCACHE]:
            cache = magcache if path == CALIBRATED_MAGCACHE else load_config(path).cache
            try:
                ppcache.apply_cache(model, cache)
            except PPCacheError as error:
                out["configs"][path] = {"error": str(error)}
                continue
            first = sample(model, call, latents, context, True)
            row = {"family": ppcache.summary(model)["model_family"],
                   "compute_fraction": ppcache.summary(model)["compute_fraction"],
                   "notices": ppcache.summary(model)["notices"],
                   "max_abs_diff": float(np.abs(first - reference).max()),
                   "reference_scale": float(np.abs(reference).max())}
            later = [sample(model, call, *case, True) for case in (pair, other)]  # after earlier generations
            ppcache.remove_cache(model)
            row["restored_bitwise"] = bool(np.array_equal(sample(model, call, latents, context, False), reference))
            fresh = []
            for case in (pair, other):  # each in a freshly applied cache
                ppcache.apply_cache(model, cache)
                fresh.append(sample(model, call, *case, True))
                ppcache.remove_cache(model)
            row["batch_equal_fresh"], row["shape_change_equal_fresh"] = (bool(np.array_equal(a, b))
                                                                         for a, b in zip(later, fresh))
            out["configs"][path] = row
    return out


if __name__ == "__main__":
    print(json.dumps({family: run_family(family, sys.argv[2:]) for family in sys.argv[1].split(",")}))
