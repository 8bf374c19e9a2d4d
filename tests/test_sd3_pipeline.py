"""ppdiffusers' StableDiffusion3Pipeline runs end to end on CPU with tiny random components."""
import numpy as np
import pytest

import ppcache  # noqa: F401  (quiets Paddle, CPU attention fallback; must come before ppdiffusers)
import paddle  # noqa: E402
from ppcache.models.sd3_compat import apply  # noqa: E402
from ppcache.models.tiny_tokenizers import write_clip_tokenizer, write_t5_tokenizer  # noqa: E402

SENTENCES = [
    "a photo of a cat", "a painting of a dog on the beach", "an astronaut riding a horse on mars",
    "the quick brown fox jumps over the lazy dog", "a red car parked in the street at night",
    "portrait of an old man with a white beard", "a bowl of fresh fruit on a wooden table",
]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from ppdiffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline
    from ppdiffusers.transformers import (CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer, T5Config,
                                          T5EncoderModel, T5Tokenizer)

    root = tmp_path_factory.mktemp("tokenizers")
    clip_dir = write_clip_tokenizer(str(root / "clip"))
    t5_dir = write_t5_tokenizer(str(root / "t5"), SENTENCES, vocab_size=64)
    paddle.seed(0)

    def clip_encoder():  # 514 = byte-level vocab of write_clip_tokenizer; 10 + 10 = pooled_projection_dim
        return CLIPTextModelWithProjection(CLIPTextConfig(
            vocab_size=514, hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=77, projection_dim=10, bos_token_id=512, eos_token_id=513, pad_token_id=513))

    t5 = T5EncoderModel(T5Config(vocab_size=64, d_model=24, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                                 relative_attention_num_buckets=8))
    transformer = apply()(
        sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=24, caption_projection_dim=32, pooled_projection_dim=20, out_channels=4,
        pos_embed_max_size=16)
    # 3 blocks -> vae_scale_factor 4 -> 32x32 images use 8x8 latents. The pipeline computes
    # latents / scaling_factor + shift_factor, so shift_factor must be set (its default None fails).
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[8, 8, 8], layers_per_block=1,
        latent_channels=4, norm_num_groups=4, sample_size=32, scaling_factor=1.5305, shift_factor=0.0609)
    pipeline = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
        text_encoder=clip_encoder(), tokenizer=CLIPTokenizer.from_pretrained(clip_dir),
        text_encoder_2=clip_encoder(), tokenizer_2=CLIPTokenizer.from_pretrained(clip_dir),
        text_encoder_3=t5, tokenizer_3=T5Tokenizer.from_pretrained(t5_dir))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def run(pipe, seed):
    return pipe("a photo of a cat", num_inference_steps=2, height=32, width=32, output_type="np",
                generator=paddle.Generator().manual_seed(seed)).images


def test_sd3_pipeline_two_steps(pipe):
    first = run(pipe, 0)
    assert first.shape == (1, 32, 32, 3)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(run(pipe, 0), first)
    assert not np.array_equal(run(pipe, 1), first)


def test_tiny_tokenizers(pipe):
    clip_ids = pipe.tokenizer(["a cat"], padding="longest").input_ids[0]
    assert clip_ids[0] == 512 and clip_ids[-1] == 513 and pipe.tokenizer.model_max_length == 77
    t5 = pipe.tokenizer_3
    assert (t5.pad_token_id, t5.eos_token_id, t5.unk_token_id) == (0, 1, 2)
    assert t5("a photo of a cat").input_ids[-1] == 1 and t5.model_max_length == 16
