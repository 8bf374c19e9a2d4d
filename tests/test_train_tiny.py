"""tools/train_tiny.py end to end at toy size: the shipped recipe writes a pipeline directory shaped like the
bundled tiny-flux; the experimental one (pixel autoencoder, trained text encoders) loads, generates and resumes."""
import os
import sys

import numpy as np
import paddle
import pytest

import ppcache  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

TOY = ["--samples-per-subject", "2", "--vae-iters", "2", "--iters", "2", "--batch-size", "4", "--threads", "1",
       "--text-pretrain-iters", "3"]


def _weights(directory):
    from ppcache.checkpoint import read_checkpoint_dir

    return {k: np.asarray(array) for k, (array, _) in read_checkpoint_dir(directory).items()}


def test_train_tiny_flux_writes_a_working_pipeline_and_resumes(tmp_path):
    import train_tiny
    from ppcache.pipelines.loading import load_pipeline

    out = tmp_path / "tiny"
    train_tiny.main(["--arch", "flux", "--out", str(out), "--autoencoder", "pixel", "--train-text",
                     "--base-shift", "0"] + TOY)
    pipe = load_pipeline(str(out))
    assert pipe.vae_scale_factor == 1 and pipe.transformer.config.in_channels == 16  # pixel-space autoencoder
    assert pipe.scheduler.config.base_shift == 0
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a handwritten digit 3", num_inference_steps=2, height=32, width=32, output_type="np",
                 generator=paddle.Generator().manual_seed(0)).images
    assert np.asarray(image).shape == (1, 32, 32, 3) and np.isfinite(image).all()

    # the text encoders were trained (they differ from a fresh random encoder of the same seed)
    from ppcache.tiny import build

    fresh = build.new_text_encoder("clip", 0 + 100).state_dict()
    trained = _weights(str(out / "text_encoder"))
    name = next(k for k in trained if k.endswith("token_embedding.weight"))
    assert trained[name].shape == tuple(fresh[name].shape)
    assert np.abs(trained[name] - fresh[name].numpy()).max() > 0

    before = _weights(str(out / "transformer"))
    resumed = tmp_path / "resumed"
    train_tiny.main(["--arch", "flux", "--resume", str(out), "--out", str(resumed), "--train-text"] + TOY)
    after = _weights(str(resumed / "transformer"))
    assert before.keys() == after.keys() and any(np.abs(before[k] - after[k]).max() > 0 for k in before)
    np.testing.assert_array_equal(_weights(str(out / "vae"))["decoder.conv_out.weight"],
                                  _weights(str(resumed / "vae"))["decoder.conv_out.weight"])


def test_default_recipe_builds_the_bundled_model_shape(tmp_path):
    import json

    import train_tiny
    from ppcache.config import resolve_model_path

    out = tmp_path / "tiny"
    train_tiny.main(["--arch", "flux", "--out", str(out)] + TOY)
    for part in ("vae", "transformer", "text_encoder", "text_encoder_2"):
        made = json.loads((out / part / "config.json").read_text())
        shipped = json.loads(open(os.path.join(resolve_model_path("tiny-flux"), part, "config.json")).read())
        for key in ("block_out_channels", "latent_channels", "in_channels", "num_layers", "num_single_layers",
                    "hidden_size", "d_model", "vocab_size"):
            assert made.get(key) == shipped.get(key), (part, key)
    assert (out / "tokenizer_2" / "spiece.model").read_bytes() == open(
        os.path.join(resolve_model_path("tiny-flux"), "tokenizer_2", "spiece.model"), "rb").read()


def test_sd3_recipe_rebuilds_in_place_with_its_own_vae(tmp_path):
    """The documented tiny-sd3 command reads --vae-from inside the --out directory it replaces."""
    import train_tiny
    from ppcache.pipelines.loading import load_pipeline

    out = tmp_path / "sd3"
    train_tiny.main(["--arch", "sd3", "--out", str(out), "--autoencoder", "latent", "--digit-shift", "8",
                     "--self-guidance", "1"] + TOY)
    vae = _weights(str(out / "vae"))
    train_tiny.main(["--arch", "sd3", "--out", str(out), "--vae-from", str(out / "vae"), "--digit-shift", "8",
                     "--self-guidance", "1"] + TOY)
    rebuilt = _weights(str(out / "vae"))
    assert vae.keys() == rebuilt.keys() and all(np.array_equal(vae[k], rebuilt[k]) for k in vae)
    pipe = load_pipeline(str(out))
    assert type(pipe).__name__ == "StableDiffusion3Pipeline" and pipe.vae.config.latent_channels == 16


def test_identity_autoencoder_passes_pixels_through():
    from ppcache.tiny import build

    vae = build.identity_vae()
    x = paddle.to_tensor(np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 24)).astype(np.float32))
    with paddle.no_grad():
        posterior = vae.encode(x).latent_dist
        decoded = vae.decode(posterior.mean).sample
    assert float((posterior.mean - x).abs().max()) < 1e-3 and float(posterior.std.max()) < 1e-5
    assert float((decoded - x).abs().max()) < 1e-3  # far below one 8-bit step (0.0078 on [-1, 1])
    assert vae.config.block_out_channels == [9] and vae.config.latent_channels == 3


def test_text_pretraining_separates_the_subjects(tmp_path):
    """Random tiny encoders pool the ten digit prompts to nearly one vector; after pretraining each prompt's
    features name its subject and the digits are far apart."""
    import train_tiny
    from ppcache.pipelines.loading import load_pipeline

    out = tmp_path / "tiny"
    train_tiny.main(["--arch", "flux", "--out", str(out)] + TOY + ["--text-pretrain-iters", "0"])
    pipe = load_pipeline(str(out))
    digits = [f"a handwritten digit {d}" for d in range(10)]

    def digit_similarity(pipe):
        with paddle.no_grad():
            embeds, pooled, _ = pipe.encode_prompt(digits)
        result = []
        for features in (pooled.numpy(), embeds.numpy().mean(1)):
            unit = features / np.linalg.norm(features, axis=1, keepdims=True)
            result.append(float(((unit @ unit.T).sum() - 10) / 90))
        return result

    before = digit_similarity(pipe)
    accuracy = train_tiny.pretrain_text(pipe, str(out), 60, 0)
    after = digit_similarity(load_pipeline(str(out)))  # the saved encoders
    assert accuracy == {"clip": 1.0, "t5": 1.0}
    assert min(before) > 0.9 and max(after) < 0.5, (before, after)


@pytest.mark.parametrize("option", [["--digit-shift", "9"], ["--digit-shift", "-1"], ["--digit-repeats", "0"],
                                    ["--self-guidance", "0.5"]])
def test_train_tiny_rejects_out_of_range_data_and_guidance_options(option, capsys):
    import train_tiny

    with pytest.raises(SystemExit) as exit_info:
        train_tiny.parse_args(["--out", "unused"] + option)
    assert exit_info.value.code == 2 and option[0] in capsys.readouterr().err
