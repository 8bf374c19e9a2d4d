"""Load a diffusers-format pipeline directory (model_index.json + one folder per component) into Paddle.

Two sets of pipeline classes can be built from the same directory (`pipeline=`):
- "ppcache": ppcache's own `FluxPipeline` and flow-match scheduler (they run on PyPI's ppdiffusers 0.29.0, which has
  no FLUX); SD3 runs on ppdiffusers' `StableDiffusion3Pipeline` with ppcache's scheduler.
- "ppdiffusers": the installed PPDiffusers' own classes for everything (`FluxPipeline`, `FluxTransformer2DModel`,
  `StableDiffusion3Pipeline`, `FlowMatchEulerDiscreteScheduler`): what a PaddleMIX user with PPDiffusers from the
  PaddleMIX source tree runs. A class the installed ppdiffusers lacks is a one-line error.
Text encoders, tokenizers, VAEs and the SD3 transformer are ppdiffusers' classes in both.
PixArt-α/Σ, Wan2.1, HunyuanVideo and CogVideoX pipelines are always the installed PPDiffusers' own classes (ppcache
has no pipelines of its own for them); any component class the installed ppdiffusers (or its `transformers`)
exports loads, so their real diffusers-format checkpoints load as they are.
"""
from ..errors import CheckpointError
from .components import INSTALLED_PIPELINES, build_pipeline, ppdiffusers_class, read_model_index

SUPPORTED_PIPELINES = ("FluxPipeline", "StableDiffusion3Pipeline") + INSTALLED_PIPELINES
PIPELINE_SOURCES = ("ppcache", "ppdiffusers")


def pipeline_class(name, source="ppcache"):
    if source == "ppdiffusers" or name in INSTALLED_PIPELINES:
        return ppdiffusers_class(name)
    if name == "FluxPipeline":
        from .flux import FluxPipeline

        return FluxPipeline
    from ppdiffusers import StableDiffusion3Pipeline

    return StableDiffusion3Pipeline


def load_pipeline(path, paddle_dtype=None, pipeline="ppcache"):
    """Builds a FluxPipeline or StableDiffusion3Pipeline from a pipeline directory, with ppcache's classes
    (`pipeline="ppcache"`) or the installed PPDiffusers' own (`pipeline="ppdiffusers"`)."""
    path = str(path)
    if pipeline not in PIPELINE_SOURCES:
        raise CheckpointError(f"pipeline {pipeline!r} is not allowed; use one of {', '.join(PIPELINE_SOURCES)}")
    index = read_model_index(path)
    pipeline_name = index.get("_class_name")
    if pipeline_name not in SUPPORTED_PIPELINES:
        raise CheckpointError(f"{path}: pipeline {pipeline_name!r} is not supported; "
                              f"supported pipelines: {', '.join(SUPPORTED_PIPELINES)}")
    cls = pipeline_class(pipeline_name, pipeline)
    installed = pipeline == "ppdiffusers" or pipeline_name in INSTALLED_PIPELINES
    return build_pipeline(cls, path, index, paddle_dtype, installed)
