"""Load a diffusers-format pipeline directory (model_index.json + one folder per component) into Paddle."""
import json
import os

from ..errors import CheckpointError
from ..models.loading import load_module, resolve_dtype

SUPPORTED_PIPELINES = ("FluxPipeline", "StableDiffusion3Pipeline")


def _tokenizer(class_name):
    from ppdiffusers import transformers as text

    return lambda directory, dtype: getattr(text, class_name).from_pretrained(directory)


def _text_encoder(class_name):
    from ppdiffusers import transformers as text

    def load(directory, dtype):
        # Tied/non-persistent tensors that some exporters write and others do not.
        module = load_module(getattr(text, class_name), directory, dtype,
                             ignore_missing=("encoder.embed_tokens.weight",),
                             ignore_unexpected=("position_ids", "encoder.embed_tokens.weight"))
        return module
    return load


def _diffusers_model(import_path, class_name):
    def load(directory, dtype):
        module = __import__(import_path, fromlist=[class_name])
        return load_module(getattr(module, class_name), directory, dtype)
    return load


def _scheduler(directory, dtype):
    from .scheduler import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_pretrained(directory)


COMPONENT_LOADERS = {
    "FlowMatchEulerDiscreteScheduler": _scheduler,
    "CLIPTokenizer": _tokenizer("CLIPTokenizer"),
    "T5TokenizerFast": _tokenizer("T5Tokenizer"),
    "T5Tokenizer": _tokenizer("T5Tokenizer"),
    "CLIPTextModel": _text_encoder("CLIPTextModel"),
    "CLIPTextModelWithProjection": _text_encoder("CLIPTextModelWithProjection"),
    "T5EncoderModel": _text_encoder("T5EncoderModel"),
    "FluxTransformer2DModel": _diffusers_model("ppcache.models.flux_transformer", "FluxTransformer2DModel"),
    "SD3Transformer2DModel": _diffusers_model("ppdiffusers.models.transformer_sd3", "SD3Transformer2DModel"),
    "AutoencoderKL": _diffusers_model("ppdiffusers", "AutoencoderKL"),
}


def _pipeline_class(name):
    if name == "FluxPipeline":
        from .flux import FluxPipeline

        return FluxPipeline
    from ppdiffusers import StableDiffusion3Pipeline

    return StableDiffusion3Pipeline


def read_model_index(path):
    index_path = os.path.join(path, "model_index.json")
    if not os.path.isdir(path):
        raise CheckpointError(f"model directory not found: {path}")
    try:
        with open(index_path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} has no model_index.json: point --model at a diffusers-format pipeline directory "
            "(e.g. a local copy of black-forest-labs/FLUX.1-dev)") from None
    except ValueError as error:
        raise CheckpointError(f"corrupt {index_path}: {error}") from None


def load_pipeline(path, paddle_dtype=None):
    """Builds FluxPipeline (ppcache) or StableDiffusion3Pipeline (ppdiffusers) from a pipeline directory."""
    path = str(path)
    index = read_model_index(path)
    pipeline_name = index.get("_class_name")
    if pipeline_name not in SUPPORTED_PIPELINES:
        raise CheckpointError(f"{path}: pipeline {pipeline_name!r} is not supported; "
                              f"supported pipelines: {', '.join(SUPPORTED_PIPELINES)}")
    dtype = resolve_dtype(paddle_dtype)
    components = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, (list, tuple)) or len(spec) != 2:
            continue
        class_name = spec[1]
        if class_name is None:
            components[name] = None
            continue
        if class_name not in COMPONENT_LOADERS:
            raise CheckpointError(f"{path}: component {name!r} has unsupported class {class_name!r}")
        # Tokenizers and the scheduler carry no weights; text encoders run in the pipeline's dtype.
        components[name] = COMPONENT_LOADERS[class_name](os.path.join(path, name), dtype)
    return _pipeline_class(pipeline_name)(**components)
