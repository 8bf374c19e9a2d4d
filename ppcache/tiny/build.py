"""Configurations of the bundled tiny FLUX / SD3 pipelines and construction of their untrained components."""
import json
import os

import numpy as np
import paddle

LATENT_CHANNELS = 16
TEXT_DIM = 32
T5_MAX_LENGTH = 16
CLIP_MAX_LENGTH = 48
SD3_CLIP_MAX_LENGTH = 40  # all bundled prompts fit; PPDiffusers 0.29 SD3 crashes on longer prompts (see notes)

VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "block_out_channels": [16, 32], "layers_per_block": 1, "act_fn": "silu",
    "latent_channels": LATENT_CHANNELS, "norm_num_groups": 8, "sample_size": 32,
    "scaling_factor": 1.0, "shift_factor": 0.0, "use_quant_conv": False, "use_post_quant_conv": False,
}
# Experimental (train_tiny --autoencoder pixel): no downsampling, 4 latent channels, 256 tokens at 32x32. Measured
# worse than the shipped 2x VAE (docs/foundation.md): its decoder smooths away what fewer steps change.
PIXEL_VAE_CONFIG = dict(VAE_CONFIG, down_block_types=["DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D"],
                        block_out_channels=[16], latent_channels=4, norm_num_groups=4)

FLUX_CONFIG = {
    "patch_size": 1, "in_channels": 4 * LATENT_CHANNELS, "num_layers": 3, "num_single_layers": 9,
    "attention_head_dim": 32, "num_attention_heads": 2, "joint_attention_dim": TEXT_DIM,
    "pooled_projection_dim": TEXT_DIM, "guidance_embeds": False, "axes_dims_rope": [8, 12, 12],
}

SD3_CONFIG = {
    "sample_size": 16, "patch_size": 2, "in_channels": LATENT_CHANNELS, "num_layers": 12,
    "attention_head_dim": 32, "num_attention_heads": 2, "joint_attention_dim": TEXT_DIM,
    "caption_projection_dim": 64, "pooled_projection_dim": 2 * TEXT_DIM, "out_channels": LATENT_CHANNELS,
    "pos_embed_max_size": 32,
}

FLUX_SCHEDULER = {
    "_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.0,
    "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
# tiny-pixart: PixArt-α's Transformer2DModel (adaLN-single, caption projection, cross-attention to T5) on the pixels
# of the identity autoencoder, 2x2 patches (256 tokens at 32x32), trained on PixArt's DDPM schedule with v-prediction
# (the epsilon objective's first run did not sample images: README "Other DiT families").
PIXART_CONFIG = {
    "sample_size": 32, "patch_size": 2, "in_channels": 3, "out_channels": 3, "num_layers": 12,
    "num_attention_heads": 2, "attention_head_dim": 32, "cross_attention_dim": 64, "caption_channels": TEXT_DIM,
    "norm_type": "ada_norm_single", "norm_elementwise_affine": False, "norm_eps": 1e-6,
    "activation_fn": "gelu-approximate", "num_embeds_ada_norm": 1000, "attention_bias": True,
}
PIXART_SCHEDULER = {"_class_name": "DPMSolverMultistepScheduler", "num_train_timesteps": 1000, "beta_start": 1e-4,
                    "beta_end": 0.02, "beta_schedule": "linear", "prediction_type": "v_prediction", "solver_order": 2,
                    "algorithm_type": "dpmsolver++", "lower_order_final": True}
# tiny-wan: Wan2.1's WanTransformer3DModel (1x2x2 patches: 3 latent frames x 8x8 = 192 tokens for 5 frames at 32x32)
# on a tiny AutoencoderKLWan (2x in space and time, 16 channels) trained on the clips of ppcache/tiny/clips.py, with
# tiny-flux's T5 and Wan's flow-match Euler schedule (shift 3).
WAN_VAE_CONFIG = {"base_dim": 8, "z_dim": 16, "dim_mult": [1, 2], "num_res_blocks": 1, "attn_scales": [],
                  "temperal_downsample": [True], "dropout": 0.0}
WAN_CONFIG = {
    "patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 32, "in_channels": 16, "out_channels": 16,
    "text_dim": TEXT_DIM, "freq_dim": 64, "ffn_dim": 128, "num_layers": 8, "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 64,
}
WAN_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}
SD3_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.5}

CLIP_CONFIG = {
    "vocab_size": 514, "hidden_size": TEXT_DIM, "intermediate_size": 2 * TEXT_DIM, "num_hidden_layers": 2,
    "num_attention_heads": 2, "max_position_embeddings": CLIP_MAX_LENGTH, "projection_dim": TEXT_DIM,
    "hidden_act": "quick_gelu", "bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 513,
}
T5_CONFIG = {
    "d_model": TEXT_DIM, "d_kv": 16, "d_ff": 2 * TEXT_DIM, "num_layers": 2, "num_heads": 2,
    "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 8, "dropout_rate": 0.0,
    "pad_token_id": 0, "eos_token_id": 1,
}


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)


IDENTITY_VAE_CONFIG = dict(PIXEL_VAE_CONFIG, block_out_channels=[9], latent_channels=3, norm_num_groups=3)


def identity_vae(anchor=1600.0, lift=20.0):
    """An AutoencoderKL built (not trained) to pass pixels through: latents are the image, to about 2e-4.

    Residual branches (resnet conv2, attention output) are zero, so those blocks are identities. Each group
    norm sees three channels per pixel channel, (x, -x, anchor): their mean is anchor / 3 whatever the image, and
    their variance is dominated by the anchor, so the norm is linear to O(x^2 / anchor); its affine lifts x into
    SiLU's linear range, and the output conv takes the x channel back out.
    """
    from ppdiffusers import AutoencoderKL

    from ..models.loading import build_module

    vae = build_module(AutoencoderKL, IDENTITY_VAE_CONFIG)

    def assign(parameter, values):
        parameter.set_value(paddle.to_tensor(np.asarray(values, dtype=np.float32)))

    for name, layer in vae.named_sublayers():
        if (name.endswith("conv2") and ".resnets." in name) or name.endswith("to_out.0"):
            assign(layer.weight, np.zeros(layer.weight.shape))
            assign(layer.bias, np.zeros(layer.bias.shape))
    channels = IDENTITY_VAE_CONFIG["latent_channels"]
    for part in (vae.encoder, vae.decoder):
        weight, bias = np.zeros(part.conv_in.weight.shape), np.zeros(part.conv_in.bias.shape)
        for i in range(channels):
            weight[3 * i, i, 1, 1], weight[3 * i + 1, i, 1, 1], bias[3 * i + 2] = 1.0, -1.0, anchor
        assign(part.conv_in.weight, weight)
        assign(part.conv_in.bias, bias)
        assign(part.conv_norm_out.weight, np.full(part.conv_norm_out.weight.shape, anchor * np.sqrt(2) / 3))
        assign(part.conv_norm_out.bias, np.full(part.conv_norm_out.bias.shape, anchor / 3 + lift))
        weight, bias = np.zeros(part.conv_out.weight.shape), np.zeros(part.conv_out.bias.shape)
        for i in range(channels):
            weight[i, 3 * i, 1, 1], bias[i] = 1.0, -lift
        bias[channels:] = -30.0  # encoder log-variance: the posterior is its mean
        assign(part.conv_out.weight, weight)
        assign(part.conv_out.bias, bias)
    return vae.eval()


def new_vae(seed, pixel=False, video=False):
    """A random AutoencoderKL (`video`: AutoencoderKLWan, PPDiffusers from source only)."""
    from ..models.loading import build_module

    paddle.seed(seed)
    if video:
        from ppdiffusers import AutoencoderKLWan

        return build_module(AutoencoderKLWan, WAN_VAE_CONFIG)
    from ppdiffusers import AutoencoderKL

    return build_module(AutoencoderKL, PIXEL_VAE_CONFIG if pixel else VAE_CONFIG)


def new_transformer(arch, seed, latent_channels, latent_size=32):
    """`latent_size`: PixArt's sample_size, the latent side its pipeline generates by default."""
    from ..models.loading import build_module

    paddle.seed(seed)
    if arch == "flux":
        from ..models.flux_transformer import FluxTransformer2DModel

        return build_module(FluxTransformer2DModel, dict(FLUX_CONFIG, in_channels=4 * latent_channels))
    if arch == "wan":
        from ppdiffusers import WanTransformer3DModel

        return build_module(WanTransformer3DModel, dict(WAN_CONFIG, in_channels=latent_channels,
                                                        out_channels=latent_channels))
    if arch == "pixart":
        from ppdiffusers import Transformer2DModel

        return build_module(Transformer2DModel, dict(PIXART_CONFIG, in_channels=latent_channels,
                                                     out_channels=latent_channels, sample_size=latent_size))
    from ppdiffusers.models.transformer_sd3 import SD3Transformer2DModel

    return build_module(SD3Transformer2DModel, dict(SD3_CONFIG, in_channels=latent_channels,
                                                     out_channels=latent_channels))


def new_text_encoder(kind, seed):
    """Random tiny text encoders, frozen unless train_tiny --train-text trains them with the transformer."""
    from ppdiffusers import transformers as text

    from ..models.loading import build_module

    paddle.seed(seed)
    if kind == "t5":
        return build_module(text.T5EncoderModel, T5_CONFIG).eval()
    cls = text.CLIPTextModel if kind == "clip" else text.CLIPTextModelWithProjection
    return build_module(cls, CLIP_CONFIG).eval()
