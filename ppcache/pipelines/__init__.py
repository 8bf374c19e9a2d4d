"""Pipelines: ppcache's FluxPipeline, its scheduler, and the diffusers-format pipeline loader."""
from .flux import FluxPipeline
from .loading import load_pipeline
from .flow_match_scheduler import FlowMatchEulerDiscreteScheduler, calculate_shift

__all__ = ["FluxPipeline", "load_pipeline", "FlowMatchEulerDiscreteScheduler", "calculate_shift"]
