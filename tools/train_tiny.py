"""Train the bundled tiny FLUX (or SD3) text-to-image model and write it as a diffusers-format pipeline directory.

    python tools/train_tiny.py --arch flux --out ppcache/assets/tiny-flux
    python tools/train_tiny.py --arch sd3 --out ppcache/assets/tiny-sd3 --vae-from ppcache/assets/tiny-flux/vae

Data: random crops of photographs shipped with scikit-image / scikit-learn plus scikit-learn's handwritten
digits (ppcache/tiny/dataset.py). Text encoders are tiny random networks, frozen; the VAE (16 latent channels,
2x downsampling) and the transformer are trained. Everything is seeded; the run is reproducible on CPU.
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

from ppcache.tiny import build, dataset  # noqa: E402
from ppcache.tiny.train import encode_latents, train_flow, train_vae  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["flux", "sd3"], default="flux")
    parser.add_argument("--out", required=True, help="pipeline directory to write")
    parser.add_argument("--vae-from", help="reuse a trained VAE directory instead of training one")
    parser.add_argument("--resume", help="continue training the transformer of this pipeline directory (its VAE, "
                                         "tokenizers and text encoders are kept)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for Paddle's kernels")
    parser.add_argument("--samples-per-subject", type=int, default=400)
    parser.add_argument("--vae-iters", type=int, default=400)
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", help="write a sample grid PNG here")
    return parser.parse_args(argv)


def model_index(arch):
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


def write_text_side(out, arch, seed):
    """Tokenizers and frozen random text encoders, written to `out`; returns their directories."""
    from ppcache.models.loading import save_module
    from ppcache.models.tiny_tokenizers import write_clip_tokenizer, write_t5_tokenizer

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
        module = build.new_text_encoder(kind, seed + 100 + offset)
        class_name = {"clip": "CLIPTextModel", "clip_projection": "CLIPTextModelWithProjection",
                      "t5": "T5EncoderModel"}[kind]
        save_module(module, os.path.join(out, name), weights_name="model.safetensors", class_name=class_name)
        config_path = os.path.join(out, name, "config.json")
        import json

        with open(config_path) as handle:
            config = json.load(handle)
        config["architectures"] = [class_name]
        build.write_json(config_path, config)


def text_conditions(pipe, arch):
    """Per subject, per template: the text features exactly as the pipeline computes them; last: empty prompt."""
    prompts = [[dataset.prompt_for(s, k) for k in range(len(dataset.TEMPLATES))] for s in dataset.subjects()]
    prompts = [sorted(set(p), key=p.index) for p in prompts] + [[""]]
    conditions = []
    with paddle.no_grad():
        for group in prompts:
            if arch == "flux":
                embeds, pooled, _ = pipe.encode_prompt(group)
            else:
                embeds, _, pooled, _ = pipe.encode_prompt(group, group, group, do_classifier_free_guidance=False)
            conditions.append([(embeds[i].numpy(), pooled[i].numpy()) for i in range(len(group))])
    return conditions


def make_predict(arch, conditions):
    from ppcache.pipelines.flux import FluxPipeline

    def gather(cond):
        embeds = paddle.to_tensor(np.stack([conditions[label][k][0] for label, k in cond]))
        pooled = paddle.to_tensor(np.stack([conditions[label][k][1] for label, k in cond]))
        return embeds, pooled

    if arch == "flux":
        def predict(model, x, sigma, cond):
            embeds, pooled = gather(cond)
            b, c, h, w = x.shape
            ids = FluxPipeline.latent_image_ids(h // 2, w // 2, x.dtype)
            out = model(FluxPipeline.pack_latents(x), embeds, pooled, sigma, ids, paddle.zeros([embeds.shape[1], 3]),
                        return_dict=False)[0]
            return FluxPipeline.unpack_latents(out, h, w)
    else:
        def predict(model, x, sigma, cond):
            embeds, pooled = gather(cond)
            return model(hidden_states=x, encoder_hidden_states=embeds, pooled_projections=pooled,
                         timestep=sigma * 1000, return_dict=False)[0]
    return predict


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
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    images, labels = dataset.build_dataset(args.samples_per_subject, seed=args.seed)
    print(f"data: {len(images)} images, {len(dataset.subjects())} subjects", flush=True)

    if args.vae_from:
        from ppdiffusers import AutoencoderKL

        vae = load_module(AutoencoderKL, args.vae_from)
    else:
        vae = build.new_vae(args.seed)
        train_vae(vae, images, args.vae_iters, 32, args.seed)
    raw = encode_latents(vae, images)
    if not args.vae_from:
        shift, scale = float(raw.mean()), float(1.0 / raw.std())
        vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    latents = ((raw - vae.config.shift_factor) * vae.config.scaling_factor).astype(np.float32)
    print(f"latents {latents.shape} shift {vae.config.shift_factor:.4f} scale {vae.config.scaling_factor:.4f}",
          flush=True)
    save_module(vae, os.path.join(out, "vae"), class_name="AutoencoderKL")

    build.write_json(os.path.join(out, "model_index.json"), model_index(args.arch))
    scheduler = build.FLUX_SCHEDULER if args.arch == "flux" else build.SD3_SCHEDULER
    build.write_json(os.path.join(out, "scheduler", "scheduler_config.json"), scheduler)
    write_text_side(out, args.arch, args.seed)

    transformer = build.new_transformer(args.arch, args.seed)
    name = "FluxTransformer2DModel" if args.arch == "flux" else "SD3Transformer2DModel"
    save_module(transformer, os.path.join(out, "transformer"), class_name=name)  # untrained, to build the pipe
    pipe = load_pipeline(out)
    conditions = text_conditions(pipe, args.arch)
    loss = train_flow(transformer, make_predict(args.arch, conditions), latents, conditions, labels,
                      args.iters, args.batch_size, args.seed, lr=args.lr)
    save_module(transformer, os.path.join(out, "transformer"), class_name=name)
    minutes = (time.time() - start) / 60
    print(f"trained {args.arch} in {minutes:.1f} min, final loss {loss:.4f}", flush=True)
    if args.grid:
        from ppcache.tiny.report import sample_grid

        sample_grid(out, args.grid)


def resume(args, start):
    """More transformer training on an existing pipeline directory (same data, seed offset by the iterations
    already run so the batches differ)."""
    from ppcache.models.loading import save_module
    from ppcache.pipelines.loading import load_pipeline

    if os.path.abspath(args.resume) != os.path.abspath(args.out):
        if os.path.exists(args.out):
            shutil.rmtree(args.out)
        shutil.copytree(args.resume, args.out)
    images, labels = dataset.build_dataset(args.samples_per_subject, seed=args.seed)
    pipe = load_pipeline(args.out)
    vae, transformer = pipe.vae, pipe.transformer
    latents = ((encode_latents(vae, images) - vae.config.shift_factor) * vae.config.scaling_factor).astype(np.float32)
    conditions = text_conditions(pipe, args.arch)
    loss = train_flow(transformer, make_predict(args.arch, conditions), latents, conditions, labels,
                      args.iters, args.batch_size, args.seed + 1, lr=args.lr)
    name = "FluxTransformer2DModel" if args.arch == "flux" else "SD3Transformer2DModel"
    save_module(transformer, os.path.join(args.out, "transformer"), class_name=name)
    print(f"resumed {args.arch} for {args.iters} iterations in {(time.time() - start) / 60:.1f} min, "
          f"final loss {loss:.4f}", flush=True)
    if args.grid:
        from ppcache.tiny.report import sample_grid

        sample_grid(args.out, args.grid)


if __name__ == "__main__":
    main()
