"""Run with PPDiffusers from source first on the import path (see test_ppdiffusers_source.py).

    python family_pipelines.py OUT_DIR

Writes two small diffusers-format pipeline directories the loader must read as they are: OUT_DIR/tiny-pixart
(PixArtAlphaPipeline: T5, AutoencoderKL, Transformer2DModel with caption projection, DPM-Solver) and OUT_DIR/tiny-wan
(WanPipeline: T5, AutoencoderKLWan, WanTransformer3DModel, flow-match Euler: the tree's UniPC
scheduler fails on Paddle 3.3, float64 against float32 in its solve). The text encoder, tokenizer and
PixArt's VAE are tiny-flux's; the transformers and Wan's VAE are random (mechanics only), their time embeddings
smoothed as in dit_families.py.
"""
import json
import os
import shutil
import sys

import paddle

import ppcache  # noqa: F401  (its PPDiffusers shims: CaptionProjection, RMSNorm on CPU)
from ppcache.config import resolve_model_path
from ppcache.models.loading import save_module

from dit_families import smooth_in_time

TEXT_WIDTH = 32  # tiny-flux's T5 d_model


def write_pipeline(directory, pipeline, transformer, vae, scheduler):
    tiny_flux = resolve_model_path("tiny-flux")
    os.makedirs(directory, exist_ok=True)
    shutil.copytree(os.path.join(tiny_flux, "tokenizer_2"), os.path.join(directory, "tokenizer"))
    shutil.copytree(os.path.join(tiny_flux, "text_encoder_2"), os.path.join(directory, "text_encoder"))
    smooth_in_time(transformer)
    save_module(transformer, os.path.join(directory, "transformer"))
    if vae is None:
        shutil.copytree(os.path.join(tiny_flux, "vae"), os.path.join(directory, "vae"))
        vae_class = "AutoencoderKL"
    else:
        save_module(vae, os.path.join(directory, "vae"))
        vae_class = type(vae).__name__
    scheduler.save_pretrained(os.path.join(directory, "scheduler"))
    index = {"_class_name": pipeline, "tokenizer": ["transformers", "T5Tokenizer"],
             "text_encoder": ["transformers", "T5EncoderModel"], "vae": ["ppdiffusers", vae_class],
             "transformer": ["ppdiffusers", type(transformer).__name__],
             "scheduler": ["ppdiffusers", type(scheduler).__name__]}
    with open(os.path.join(directory, "model_index.json"), "w") as handle:
        json.dump(index, handle, indent=2)


def main(out):
    from ppdiffusers import (AutoencoderKLWan, DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler,
                             Transformer2DModel, WanTransformer3DModel)

    paddle.seed(0)
    pixart = Transformer2DModel(num_attention_heads=2, attention_head_dim=16, in_channels=3, out_channels=6,
                                num_layers=7, cross_attention_dim=32, sample_size=16, patch_size=2,
                                norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
                                activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
                                caption_channels=TEXT_WIDTH, attention_bias=True)
    write_pipeline(os.path.join(out, "tiny-pixart"), "PixArtAlphaPipeline", pixart, None,
                   DPMSolverMultistepScheduler())
    wan = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4,
                                out_channels=4, text_dim=TEXT_WIDTH, freq_dim=32, ffn_dim=64, num_layers=7,
                                rope_max_seq_len=32)
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[True],
                           latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    write_pipeline(os.path.join(out, "tiny-wan"), "WanPipeline", wan, vae,
                   FlowMatchEulerDiscreteScheduler(shift=3.0))
    print(json.dumps({"written": sorted(os.listdir(out))}))


if __name__ == "__main__":
    main(sys.argv[1])
