"""Run one generation described by a `RunSection` on a FLUX, SD3, PixArt or video (Wan2.1, HunyuanVideo, CogVideoX)
pipeline."""
import time

import paddle

from ..errors import ConfigError
from ..parallel.enable import check_sequence_tokens


VIDEO_PIPELINES = ("WanPipeline", "HunyuanVideoPipeline", "CogVideoXPipeline")


def is_video(pipe):
    return type(pipe).__name__ in VIDEO_PIPELINES


def latent_multiple(pipe):
    """Height and width must be multiples of this for the pipeline's latent packing / patching."""
    vae_factor = getattr(pipe, "vae_scale_factor_spatial", None)
    if vae_factor is None:
        vae_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    patch = getattr(pipe.transformer.config, "patch_size", 1) or 1
    patch = patch[-1] if isinstance(patch, (list, tuple)) else patch  # video: (frames, height, width)
    return vae_factor * max(2 if is_flux(pipe) else 1, patch)


def check_resolution(pipe, height, width):
    unit = latent_multiple(pipe)
    for key, value in (("height", height), ("width", width)):
        if value % unit:
            raise ConfigError(f"run.{key} must be a multiple of {unit} for this model, got {value}")
    check_sequence_tokens(pipe, height, width)


def is_flux(pipe):
    return type(pipe).__name__ == "FluxPipeline"


def model_call_kwargs(pipe):
    """Call arguments every generation passes so that ppcache's and PPDiffusers' FluxPipeline sample alike: T5
    prompts take the tokenizer's `model_max_length` tokens (at most 512; PPDiffusers' default is always 512).
    PixArt generates at the asked resolution, not at the nearest aspect-ratio bin it was trained on."""
    if type(pipe).__name__.startswith("PixArt"):
        return {"use_resolution_binning": False, "clean_caption": False}
    if is_video(pipe):
        return video_call_kwargs(pipe)
    if not is_flux(pipe):
        return {}
    return {"max_sequence_length": min(512, int(getattr(pipe.tokenizer_2, "model_max_length", 512) or 512))}


def default_frames(pipe):
    """The frame count a video checkpoint records for itself (model_index.json "_ppcache_run"), or None."""
    return getattr(pipe, "_ppcache_run_defaults", {}).get("frames")


def video_call_kwargs(pipe):
    """A video model's recorded frame count; Wan2.1's prompts take the tokenizer's `model_max_length` tokens (at
    most 512, its pipeline's default), as its text encoder was run in training."""
    kwargs = {}
    frames = default_frames(pipe)
    if frames:
        kwargs["num_frames"] = int(frames)
    if type(pipe).__name__ == "WanPipeline":
        kwargs["max_sequence_length"] = min(512, int(getattr(pipe.tokenizer, "model_max_length", 512) or 512))
    return kwargs


def pipeline_kwargs(pipe, run):
    kwargs = dict(prompt=run.prompt, height=run.height, width=run.width, num_inference_steps=run.steps,
                  guidance_scale=run.guidance_scale, generator=paddle.Generator().manual_seed(run.seed),
                  output_type="pil", **model_call_kwargs(pipe))
    if is_flux(pipe):
        kwargs["true_cfg_scale"] = run.true_cfg_scale
        if run.max_sequence_length is not None:
            kwargs["max_sequence_length"] = run.max_sequence_length
        if run.negative_prompt is not None:
            kwargs["negative_prompt"] = run.negative_prompt
    elif run.negative_prompt is not None:
        kwargs["negative_prompt"] = run.negative_prompt
    if is_video(pipe):
        if run.frames is not None:
            kwargs["num_frames"] = run.frames
    elif run.frames is not None:
        raise ConfigError(f"run.frames is for video pipelines; {type(pipe).__name__} makes images")
    return kwargs


def first_output(pipe, output):
    """The first image of a pipeline's output, or for a video pipeline the first video's frames."""
    return output.frames[0] if is_video(pipe) else output.images[0]


def generate(pipe, run):
    """Returns (PIL image, wall seconds); for a video pipeline (list of PIL frames, wall seconds)."""
    check_resolution(pipe, run.height, run.width)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    start = time.perf_counter()
    output = pipe(**pipeline_kwargs(pipe, run))
    result = first_output(pipe, output)
    result = list(result) if is_video(pipe) else result
    return result, time.perf_counter() - start
