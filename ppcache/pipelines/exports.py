"""`ppcache.FluxPipeline` and `ppcache.StableDiffusion3Pipeline`: the pipeline classes that the PaddleMIX seed code
imports (`from ppdiffusers import FluxPipeline, SortBlockConfig, apply_sort_block`, with `ppcache` in place of
`ppdiffusers`).

- Where the installed ppdiffusers has the class (PPDiffusers from the PaddleMIX source tree has both; PyPI's 0.29.0
  has only StableDiffusion3Pipeline), it is that class, with one addition: `from_pretrained` on a local directory
  whose transformer weights are in diffusers' (torch) layout, such as a local copy of black-forest-labs/FLUX.1-dev
  or ppcache's bundled models, sets `from_diffusers=True` unless the caller set it. Everything else is PPDiffusers'.
- Otherwise (FluxPipeline on PyPI's ppdiffusers 0.29.0) it is ppcache's own `ppcache.pipelines.FluxPipeline`.
"""
import glob
import os

TORCH_WEIGHTS = ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.bin")


def holds_torch_weights(path):
    """True for a local pipeline directory whose transformer weights are in diffusers' (torch) layout."""
    folder = os.path.join(str(path), "transformer")
    return os.path.isdir(folder) and any(glob.glob(os.path.join(folder, pattern)) for pattern in TORCH_WEIGHTS)


def reading_diffusers_directories(base):
    """A subclass of PPDiffusers pipeline class `base` that reads diffusers-format directories as well."""

    class Pipeline(base):
        @classmethod
        def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
            if "from_diffusers" not in kwargs and holds_torch_weights(pretrained_model_name_or_path):
                kwargs["from_diffusers"] = True
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    Pipeline.__name__ = Pipeline.__qualname__ = base.__name__
    Pipeline.__doc__ = (f"PPDiffusers' {base.__name__}; `from_pretrained` also reads local diffusers-format "
                        "directories (see ppcache.pipelines.exports).\n\n" + (base.__doc__ or ""))
    return Pipeline


def pipeline_export(name):
    import ppdiffusers

    base = getattr(ppdiffusers, name, None)
    if base is not None:
        return reading_diffusers_directories(base)
    from .flux import FluxPipeline

    return FluxPipeline


FluxPipeline = pipeline_export("FluxPipeline")
StableDiffusion3Pipeline = pipeline_export("StableDiffusion3Pipeline")
