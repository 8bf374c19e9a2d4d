"""Train the bundled tiny FLUX (or SD3) text-to-image model and write it as a diffusers-format pipeline directory.

    python tools/train_tiny.py --arch flux --out ppcache/assets/tiny-flux
    python tools/train_tiny.py --arch sd3 --out ppcache/assets/tiny-sd3 --vae-from VAE_DIR --iters 400 \
        --batch-size 32 --lr 5e-4 --samples-per-subject 400 --digit-shift 8 --digit-repeats 1 --self-guidance 1
    python tools/train_tiny.py --arch pixart --out ppcache/assets/tiny-pixart --vae-from VAE_DIR --iters 800 \
        --batch-size 32 --lr 5e-4 --samples-per-subject 400 --digit-shift 8 --digit-repeats 1 --self-guidance 1
    PYTHONPATH=../shared/ppdiffusers-src python tools/train_tiny.py --arch wan --out ppcache/assets/tiny-wan \
        --vae-iters 800 --iters 800 --batch-size 32 --lr 5e-4 --samples-per-subject 200 --self-guidance 1

Data: random crops of photographs shipped with scikit-image / scikit-learn plus scikit-learn's handwritten
digits (ppcache/tiny/dataset.py). tiny-flux (the defaults): pixels sampled directly through a built identity
autoencoder at 32x32, tiny CLIP and T5 pretrained to tell the subjects apart and then frozen, and a transformer
trained with classifier-free guidance at scale 6 baked in (--self-guidance). tiny-sd3 keeps the 2x latent VAE of
the earlier recipe (--autoencoder latent; VAE_DIR: its own ppcache/assets/tiny-sd3/vae) and random frozen text
encoders. tiny-pixart (PixArtAlphaPipeline): PixArt-α's Transformer2DModel on tiny-sd3's 2x latent VAE (VAE_DIR:
ppcache/assets/tiny-sd3/vae, re-registered without shift: PixArt's pipeline decodes latents / scaling_factor) and
tiny-flux's pretrained, frozen T5, trained with a v-prediction objective on PixArt's DDPM schedule for DPM-Solver++
sampling and real classifier-free guidance (--self-guidance 1). tiny-wan (WanPipeline, PPDiffusers from source only):
Wan2.1's WanTransformer3DModel and a tiny AutoencoderKLWan (2x in space and time) trained here on 5-frame clips of
the same subjects panning or drifting (ppcache/tiny/clips.py), with tiny-flux's frozen T5 and real classifier-free
guidance. Pixel-space PixArt runs (the identity autoencoder,
epsilon or v objective) gave grainy samples (README "Other DiT families"). Everything is
seeded; the run is reproducible on CPU. --autoencoder latent|pixel, --train-text, --image-size 16 and other values
of these options are the experiments of docs/foundation.md.
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import ppcache  # noqa: E402,F401
import paddle  # noqa: E402

from ppcache.tiny import build, clips, dataset  # noqa: E402
from ppcache.tiny.train import encode_latents, train_flow, train_vae  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["flux", "sd3", "pixart", "wan"], default="flux")
    parser.add_argument("--out", required=True, help="pipeline directory to write")
    parser.add_argument("--vae-from", help="reuse a trained VAE directory instead of training one")
    parser.add_argument("--resume", help="continue training the transformer of this pipeline directory (its VAE, "
                                         "tokenizers and text encoders are kept)")
    parser.add_argument("--train-text", action="store_true",
                        help="experimental: train tiny-flux's text encoders with the transformer (default: frozen)")
    parser.add_argument("--autoencoder", choices=["latent", "pixel", "identity"], default="identity",
                        help="experimental: pixel (no downsampling, 4 channels, trained without mid attention) or "
                             "identity (built, not trained: latents are the pixels)")
    parser.add_argument("--image-size", type=int, default=dataset.IMAGE_SIZE, choices=[16, 32],
                        help="training image size (pixels); the pipeline's default resolution")
    parser.add_argument("--text-pretrain-iters", type=int, default=300,
                        help="tiny-flux: teach the tiny text encoders to tell the subjects apart before the "
                             "transformer trains (they are frozen after); 0 keeps them random")
    parser.add_argument("--base-shift", type=float, default=0.0,
                        help="FLUX dynamic shift: mu at 256 image tokens")
    parser.add_argument("--self-guidance", type=float, default=6.0,
                        help="bake classifier-free guidance at this scale into the model (model-guidance training; "
                             "1 = off)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for Paddle's kernels")
    parser.add_argument("--samples-per-subject", type=int, default=200)
    parser.add_argument("--digit-shift", type=int, default=dataset.DIGIT_SHIFT,
                        help="range of a digit's position on the canvas, in pixels (8: anywhere, 2: centred +-1)")
    parser.add_argument("--digit-repeats", type=int, default=3,
                        help="samples per digit subject, as a multiple of --samples-per-subject")
    parser.add_argument("--frames", type=int, default=clips.FRAMES,
                        help="tiny-wan: frames per training clip (1 + 2k)")
    parser.add_argument("--vae-iters", type=int, default=400)
    parser.add_argument("--iters", type=int, default=1300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=8e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", help="write a sample grid PNG here")
    args = parser.parse_args(argv)
    if not 0 <= args.digit_shift <= dataset.FREE_DIGIT_SHIFT:
        parser.error(f"--digit-shift must be between 0 and {dataset.FREE_DIGIT_SHIFT} pixels, got {args.digit_shift}")
    if args.digit_repeats < 1:
        parser.error(f"--digit-repeats must be at least 1, got {args.digit_repeats}")
    if args.self_guidance < 1.0:
        parser.error(f"--self-guidance must be at least 1 (1 turns it off), got {args.self_guidance}")
    return args


TRANSFORMER_CLASSES = {"flux": "FluxTransformer2DModel", "sd3": "SD3Transformer2DModel",
                       "pixart": "Transformer2DModel", "wan": "WanTransformer3DModel"}
VAE_CLASSES = {"wan": "AutoencoderKLWan"}


def model_index(arch, frames=None):
    if arch == "wan":  # `_ppcache_run`: the generation defaults a bundled model was trained for
        return {"_class_name": "WanPipeline", "_diffusers_version": "0.36.0",
                "_ppcache_run": {"frames": frames},
                "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
                "transformer": ["diffusers", "WanTransformer3DModel"], "vae": ["diffusers", "AutoencoderKLWan"]}
    if arch == "pixart":
        return {"_class_name": "PixArtAlphaPipeline", "_diffusers_version": "0.36.0",
                "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
                "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
                "transformer": ["diffusers", "Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}
    if arch == "flux":
        return {"_class_name": "FluxPipeline", "_diffusers_version": "0.36.0",
                "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
                "text_encoder_2": ["transformers", "T5EncoderModel"],
                "tokenizer_2": ["transformers", "T5TokenizerFast"],
                "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}
    return {"_class_name": "StableDiffusion3Pipeline", "_diffusers_version": "0.36.0",
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "text_encoder_3": ["transformers", "T5EncoderModel"], "tokenizer_3": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "SD3Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}


TEXT_ENCODER_CLASSES = {"clip": "CLIPTextModel", "clip_projection": "CLIPTextModelWithProjection",
                        "t5": "T5EncoderModel"}


def save_text_encoder(module, out, name, class_name):
    import json

    from ppcache.models.loading import save_module

    save_module(module, os.path.join(out, name), weights_name="model.safetensors", class_name=class_name)
    config_path = os.path.join(out, name, "config.json")
    with open(config_path) as handle:
        config = json.load(handle)
    config["architectures"] = [class_name]
    build.write_json(config_path, config)


def write_text_side(out, arch, seed):
    """Tokenizers and random text encoders (tiny-pixart: tiny-flux's pretrained T5), written to `out`."""
    from ppcache.models.tiny_tokenizers import write_clip_tokenizer, write_t5_tokenizer

    if arch in ("pixart", "wan"):
        from ppcache.config import resolve_model_path

        tiny_flux = resolve_model_path("tiny-flux")
        shutil.copytree(os.path.join(tiny_flux, "tokenizer_2"), os.path.join(out, "tokenizer"))
        shutil.copytree(os.path.join(tiny_flux, "text_encoder_2"), os.path.join(out, "text_encoder"))
        return

    sentences = [dataset.prompt_for(s, k) for s in dataset.subjects() for k in range(len(dataset.TEMPLATES))]
    clip_names = ["tokenizer"] if arch == "flux" else ["tokenizer", "tokenizer_2"]
    for name in clip_names:
        # PPDiffusers' SD3 pads T5 to the CLIP length too, so SD3 uses a shorter one to keep text tokens few.
        length = build.CLIP_MAX_LENGTH if arch == "flux" else build.SD3_CLIP_MAX_LENGTH
        write_clip_tokenizer(os.path.join(out, name), model_max_length=length)
    t5_name = "tokenizer_2" if arch == "flux" else "tokenizer_3"
    write_t5_tokenizer(os.path.join(out, t5_name), sentences, vocab_size=256, model_max_length=build.T5_MAX_LENGTH)
    from ppdiffusers.transformers import T5Tokenizer

    build.T5_CONFIG["vocab_size"] = len(T5Tokenizer.from_pretrained(os.path.join(out, t5_name)))
    encoders = {"text_encoder": "clip" if arch == "flux" else "clip_projection"}
    if arch == "flux":
        encoders["text_encoder_2"] = "t5"
    else:
        encoders.update(text_encoder_2="clip_projection", text_encoder_3="t5")
    for offset, (name, kind) in enumerate(encoders.items()):
        save_text_encoder(build.new_text_encoder(kind, seed + 100 + offset), out, name, TEXT_ENCODER_CLASSES[kind])


def prompt_groups():
    """Every training prompt (the empty prompt last) and, per subject, the ids of its prompts."""
    prompts, groups = [], []
    for subject in dataset.subjects():
        group = []
        for template in range(len(dataset.TEMPLATES)):
            prompt = dataset.prompt_for(subject, template)
            if prompt not in prompts:
                prompts.append(prompt)
            if prompts.index(prompt) not in group:
                group.append(prompts.index(prompt))
        groups.append(group)
    prompts.append("")
    groups.append([len(prompts) - 1])
    return prompts, groups


class Trainable(paddle.nn.Layer):
    """The trained parameters: the transformer and, for tiny-flux, its two text encoders."""

    def __init__(self, transformer, text_encoders):
        super().__init__()
        self.transformer = transformer
        self.text_encoders = paddle.nn.LayerList(text_encoders)


def token_ids(pipe, prompts):
    """tiny-flux's CLIP and T5 token ids of `prompts`, padded as the pipeline pads them."""
    clip_ids = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                              truncation=True, return_tensors="pd")["input_ids"]
    t5_ids = pipe.tokenizer_2(prompts, padding="max_length", max_length=pipe.default_max_sequence_length(),
                              truncation=True, return_tensors="pd")["input_ids"]
    return clip_ids, t5_ids


def pretrain_text(pipe, out, iters, seed):
    """tiny-flux's text encoders learn to separate the subjects (pooled CLIP, mean T5 tokens), then are saved."""
    from ppcache.tiny.train import pretrain_text_encoders

    prompts, groups = prompt_groups()
    clip_ids, t5_ids = token_ids(pipe, prompts)

    def rows(ids, table):
        return paddle.gather(table, paddle.to_tensor(ids))

    encoders = {
        "clip": (lambda ids: pipe.text_encoder(rows(ids, clip_ids), return_dict=True).pooler_output,
                 pipe.text_encoder.parameters()),
        "t5": (lambda ids: pipe.text_encoder_2(rows(ids, t5_ids), return_dict=True).last_hidden_state.mean(1),
               pipe.text_encoder_2.parameters()),
    }
    pipe.text_encoder.train()
    pipe.text_encoder_2.train()
    accuracy = pretrain_text_encoders(encoders, groups, iters, seed)
    pipe.text_encoder.eval()
    pipe.text_encoder_2.eval()
    save_text_encoder(pipe.text_encoder, out, "text_encoder", "CLIPTextModel")
    save_text_encoder(pipe.text_encoder_2, out, "text_encoder_2", "T5EncoderModel")
    return accuracy


def text_encoding(pipe, arch, prompts, train_text):
    """`encode(prompt_ids) -> (embeds, pooled)` exactly as the pipeline computes them (tiny-pixart: the T5 embeds
    and their attention mask)."""
    if arch == "flux" and train_text:
        clip_ids, t5_ids = token_ids(pipe, prompts)

        def encode(ids):
            unique = sorted(set(ids))
            rows = paddle.to_tensor(unique)
            pooled = pipe.text_encoder(paddle.gather(clip_ids, rows), return_dict=True).pooler_output
            embeds = pipe.text_encoder_2(paddle.gather(t5_ids, rows), return_dict=True).last_hidden_state
            order = paddle.to_tensor([unique.index(i) for i in ids])
            return paddle.gather(embeds, order), paddle.gather(pooled, order)
        return encode
    with paddle.no_grad():
        if arch == "flux":
            embeds, pooled, _ = pipe.encode_prompt(prompts)
        elif arch == "pixart":
            embeds, pooled = pipe.encode_prompt(prompts, do_classifier_free_guidance=False)[:2]
        elif arch == "wan":  # no pooled text: the embeds stand in for it
            embeds = pipe.encode_prompt(prompts, do_classifier_free_guidance=False,
                                        max_sequence_length=pipe.tokenizer.model_max_length)[0]
            pooled = embeds
        else:
            embeds, _, pooled, _ = pipe.encode_prompt(prompts, prompts, prompts, do_classifier_free_guidance=False)

    def encode(ids):
        rows = paddle.to_tensor(ids)
        return paddle.gather(embeds, rows), paddle.gather(pooled, rows)
    return encode


def make_predict(arch, transformer):
    from ppcache.pipelines.flux import FluxPipeline

    if arch == "flux":
        def predict(x, sigma, embeds, pooled):
            b, c, h, w = x.shape
            ids = FluxPipeline.latent_image_ids(h // 2, w // 2, x.dtype)
            out = transformer(FluxPipeline.pack_latents(x), embeds, pooled, sigma, ids,
                              paddle.zeros([embeds.shape[1], 3]), return_dict=False)[0]
            return FluxPipeline.unpack_latents(out, h, w)
    elif arch == "pixart":
        def predict(x, t, embeds, mask):
            return transformer(x, encoder_hidden_states=embeds, encoder_attention_mask=mask, timestep=t,
                               added_cond_kwargs={"resolution": None, "aspect_ratio": None}, return_dict=False)[0]
    elif arch == "wan":
        def predict(x, sigma, embeds, pooled):
            return transformer(hidden_states=x, timestep=sigma * 1000, encoder_hidden_states=embeds,
                               return_dict=False)[0]
    else:
        def predict(x, sigma, embeds, pooled):
            return transformer(hidden_states=x, encoder_hidden_states=embeds, pooled_projections=pooled,
                               timestep=sigma * 1000, return_dict=False)[0]
    return predict


def train_and_save(pipe, out, args, latents, labels, seed):
    """Trains the transformer (and tiny-flux's text encoders) of `pipe` and writes them to `out`."""
    from ppcache.models.loading import save_module
    from ppcache.tiny.train import Diffusion, RectifiedFlow

    prompts, groups = prompt_groups()
    train_text = args.arch == "flux" and args.train_text
    text_encoders = [pipe.text_encoder, pipe.text_encoder_2] if train_text else []
    trainable = Trainable(pipe.transformer, text_encoders)
    loss = train_flow(trainable, make_predict(args.arch, pipe.transformer),
                      text_encoding(pipe, args.arch, prompts, train_text), groups, latents, labels,
                      args.iters, args.batch_size, seed, lr=args.lr, self_guidance=args.self_guidance,
                      objective=(Diffusion(build.PIXART_SCHEDULER["prediction_type"]) if args.arch == "pixart"
                                 else RectifiedFlow()))
    save_module(pipe.transformer, os.path.join(out, "transformer"), class_name=TRANSFORMER_CLASSES[args.arch])
    if train_text:
        save_text_encoder(pipe.text_encoder, out, "text_encoder", "CLIPTextModel")
        save_text_encoder(pipe.text_encoder_2, out, "text_encoder_2", "T5EncoderModel")
    return loss


def main(argv=None):
    args = parse_args(argv)
    from ppcache.models.loading import load_module, save_module
    from ppcache.pipelines.loading import load_pipeline

    start = time.time()
    paddle.base.core.set_num_threads(args.threads)
    paddle.seed(args.seed)
    out = args.out
    if args.resume:
        return resume(args, start)
    video = args.arch == "wan"
    given_vae = None
    if args.vae_from:  # read before `out` is cleared: it may be the VAE of the model being rebuilt
        import ppdiffusers

        given_vae = load_module(getattr(ppdiffusers, VAE_CLASSES.get(args.arch, "AutoencoderKL")), args.vae_from)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    if video:
        images, labels = clips.build_clips(args.samples_per_subject, seed=args.seed, frames=args.frames)
    else:
        images, labels = dataset.build_dataset(args.samples_per_subject, seed=args.seed, image_size=args.image_size,
                                               digit_shift=args.digit_shift, digit_repeats=args.digit_repeats)
    print(f"data: {images.shape} {'clips' if video else 'images'}, {len(dataset.subjects())} subjects", flush=True)

    if given_vae is not None:
        vae = given_vae
    elif video:
        vae = build.new_vae(args.seed, video=True)
        train_vae(vae, images, args.vae_iters, 8, args.seed)
    elif args.autoencoder == "identity":
        vae = build.identity_vae()
    else:
        pixel = args.autoencoder == "pixel"
        vae = build.new_vae(args.seed, pixel=pixel)
        train_vae(vae, images, args.vae_iters, 16 if pixel else 32, args.seed, mid_attention=not pixel)
    raw = encode_latents(vae, images, batch_size=64 if video else 256)
    if video:  # WanPipeline decodes latents * latents_std + latents_mean, per channel
        axes = (0, 2, 3, 4)
        vae.register_to_config(latents_mean=[float(v) for v in raw.mean(axes)],
                               latents_std=[float(v) for v in raw.std(axes)])
        mean = np.asarray(vae.config.latents_mean, np.float32).reshape(1, -1, 1, 1, 1)
        std = np.asarray(vae.config.latents_std, np.float32).reshape(1, -1, 1, 1, 1)
        latents = ((raw - mean) / std).astype(np.float32)
    elif args.arch == "pixart":  # PixArt's pipeline decodes latents / scaling_factor: it has no shift
        vae.register_to_config(shift_factor=0.0, scaling_factor=float(1.0 / raw.std()), sample_size=args.image_size)
    elif not args.vae_from:
        vae.register_to_config(shift_factor=float(raw.mean()), scaling_factor=float(1.0 / raw.std()),
                               sample_size=args.image_size)
    if not video:
        latents = ((raw - vae.config.shift_factor) * vae.config.scaling_factor).astype(np.float32)
        print(f"latents {latents.shape} shift {vae.config.shift_factor:.4f} scale {vae.config.scaling_factor:.4f}",
              flush=True)
    save_module(vae, os.path.join(out, "vae"), class_name=VAE_CLASSES.get(args.arch, "AutoencoderKL"))

    build.write_json(os.path.join(out, "model_index.json"),
                     model_index(args.arch, frames=images.shape[2] if video else None))
    scheduler = {"flux": dict(build.FLUX_SCHEDULER, base_shift=args.base_shift), "sd3": build.SD3_SCHEDULER,
                 "pixart": build.PIXART_SCHEDULER, "wan": build.WAN_SCHEDULER}[args.arch]
    build.write_json(os.path.join(out, "scheduler", "scheduler_config.json"), scheduler)
    write_text_side(out, args.arch, args.seed)

    channels = vae.config.z_dim if video else vae.config.latent_channels
    transformer = build.new_transformer(args.arch, args.seed, channels,
                                        latent_size=latents.shape[-1])
    save_module(transformer, os.path.join(out, "transformer"), class_name=TRANSFORMER_CLASSES[args.arch])  # untrained
    pipe = load_pipeline(out)
    if args.text_pretrain_iters and args.arch == "flux":
        pretrain_text(pipe, out, args.text_pretrain_iters, args.seed)
    loss = train_and_save(pipe, out, args, latents, labels, args.seed)
    minutes = (time.time() - start) / 60
    print(f"trained {args.arch} in {minutes:.1f} min, final loss {loss:.4f}", flush=True)
    if args.grid:
        from ppcache.tiny.report import sample_grid

        sample_grid(out, args.grid)


def resume(args, start):
    """More transformer training on an existing pipeline directory (same data, seed offset by the iterations
    already run so the batches differ)."""
    from ppcache.pipelines.loading import load_pipeline

    if os.path.abspath(args.resume) != os.path.abspath(args.out):
        if os.path.exists(args.out):
            shutil.rmtree(args.out)
        shutil.copytree(args.resume, args.out)
    pipe = load_pipeline(args.out)
    # the VAE records the training image size (PixArt's pipeline has no default_sample_size)
    images, labels = dataset.build_dataset(args.samples_per_subject, seed=args.seed,
                                           image_size=pipe.vae.config.sample_size, digit_shift=args.digit_shift,
                                           digit_repeats=args.digit_repeats)
    vae = pipe.vae
    latents = ((encode_latents(vae, images) - vae.config.shift_factor) * vae.config.scaling_factor).astype(np.float32)
    loss = train_and_save(pipe, args.out, args, latents, labels, args.seed + 1)
    print(f"resumed {args.arch} for {args.iters} iterations in {(time.time() - start) / 60:.1f} min, "
          f"final loss {loss:.4f}", flush=True)
    if args.grid:
        from ppcache.tiny.report import sample_grid

        sample_grid(args.out, args.grid)


if __name__ == "__main__":
    main()
