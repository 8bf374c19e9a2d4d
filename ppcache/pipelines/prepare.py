"""From a config to a ready pipeline, once for every tool: the same YAML means the same pipeline in infer, benchmark,
tune, the calibration tools and the schedule search."""
import dataclasses

from ..compiled import compile_blocks
from ..config import ModelSection, PPCacheConfig, resolve_model_path
from ..parallel import enable_sequence_parallel
from .loading import load_pipeline


def model_section(path="tiny-flux", pipeline="ppcache", dtype="float32", compile=False):
    """A validated `model:` section from a tool's command-line options."""
    section = ModelSection(path=path, pipeline=pipeline, dtype=dtype, compile=compile)
    section.validate("model")
    return section


def prepare(config, sequence=None, **overrides):
    """(pipeline, sequence-parallel group or None) for `config` (a PPCacheConfig or a ModelSection):

    - loaded from `model.path` in `model.dtype` with `model.pipeline`'s classes, its progress bar off;
    - its image tokens split across `sequence` launched ranks (default: `parallel.sequence`; 1: one process);
    - every transformer block compiled when `model.compile` (ppcache.compiled).

    `overrides` replace fields of the model section (a tool's --model / --pipeline options)."""
    model = config.model if isinstance(config, PPCacheConfig) else config
    model = dataclasses.replace(model, **{k: v for k, v in overrides.items() if v is not None})
    model.validate("model")
    size = (config.parallel.sequence if isinstance(config, PPCacheConfig) else 1) if sequence is None else sequence
    pipe = load_pipeline(resolve_model_path(model.path), paddle_dtype=model.dtype, pipeline=model.pipeline)
    pipe.set_progress_bar_config(disable=True)
    group = enable_sequence_parallel(pipe, size) if size > 1 else None
    if model.compile:
        compile_blocks(pipe)
    return pipe, group
