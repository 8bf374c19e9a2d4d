"""Pipelines: ppcache's FluxPipeline, its scheduler, the diffusers-format pipeline loader, and `prepare` (a config
to a ready pipeline)."""
from .flux import FluxPipeline
from .loading import load_pipeline
from .flow_match_scheduler import FlowMatchEulerDiscreteScheduler, calculate_shift
from .prepare import model_section, prepare

__all__ = ["FluxPipeline", "load_pipeline", "FlowMatchEulerDiscreteScheduler", "calculate_shift", "prepare",
           "model_section"]
