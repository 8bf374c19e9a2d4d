"""Public entry points: apply_cache / remove_cache / summary / generation, and the PaddleMIX-shaped helpers."""
import contextlib
import dataclasses
import functools

from .config import PPCacheConfig, build_cache_section, load_config, NoCache
from .engine import CacheEngine
from .errors import ConfigError, PPCacheError


def _split(target):
    """(pipeline or None, denoiser): a pipeline's transformer, or its unet (SD / SDXL pipelines)."""
    for name in ("transformer", "unet"):
        model = getattr(target, name, None)
        if model is not None and hasattr(target, "scheduler"):
            return target, model
    return None, target


def _method_config(config):
    if isinstance(config, str):
        return load_config(config).cache
    if isinstance(config, PPCacheConfig):
        return config.cache
    if isinstance(config, dict):
        return build_cache_section(config)
    if dataclasses.is_dataclass(config) and hasattr(config, "method"):
        if hasattr(config, "validate"):
            config.validate("cache")
        return config
    raise ConfigError(f"cannot use {type(config).__name__} as a cache config: pass a YAML path, a dict, "
                      "a PPCacheConfig or a method config such as SortBlockConfig")


def engine_of(target):
    _, transformer = _split(target)
    return transformer.__dict__.get("_ppcache_engine")


def _attach_scheduler(pipe, engine):
    """The pipeline's scheduler opens each generation (`set_timesteps`) and closes each step (`step`). The hooks
    are instance attributes that keep the originals' signatures (PPDiffusers' `retrieve_timesteps` inspects
    `set_timesteps` for `sigmas` / `timesteps`) and return their results unchanged; removal puts back exactly
    what the instance held before."""
    scheduler = pipe.scheduler
    names = ("set_timesteps", "step")
    saved = {name: scheduler.__dict__[name] for name in names if name in scheduler.__dict__}
    original_set, original_step = scheduler.set_timesteps, scheduler.step
    tracker = engine.tracker

    @functools.wraps(original_set)
    def set_timesteps(*args, **kwargs):
        result = original_set(*args, **kwargs)
        timesteps = getattr(scheduler, "timesteps_host", None)
        if timesteps is None:
            timesteps = [float(t) for t in scheduler.timesteps.numpy()]  # once per generation
        tracker.begin_generation(len(timesteps), timesteps)
        return result

    @functools.wraps(original_step)
    def step(*args, **kwargs):
        result = original_step(*args, **kwargs)
        tracker.end_step()
        if tracker.num_steps is not None and tracker.step >= tracker.num_steps:
            tracker.end_generation()
        return result

    scheduler.set_timesteps, scheduler.step = set_timesteps, step

    def detach():
        for name in names:
            scheduler.__dict__.pop(name, None)
        scheduler.__dict__.update(saved)

    engine.detach_scheduler = detach


def apply_cache(target, config):
    """Caches `target` (a FluxPipeline / StableDiffusion3Pipeline, or a bare transformer; for DeepCache a
    StableDiffusionPipeline / StableDiffusionXLPipeline or a bare UNet2DConditionModel) with `config`.

    `config`: a YAML path, a `PPCacheConfig`, a `cache:` dict, a method config (SortBlockConfig, ...), or a
    ready Policy instance (a calibration recorder, ppcache.bench.calibration). With a pipeline, generations and
    steps come from its scheduler; with a bare transformer, from the timestep of each call (see ppcache.context).
    Returns the engine; `remove_cache(target)` undoes it.
    """
    from .policies import policy_for
    from .policies.base import Policy

    policy = config if isinstance(config, Policy) else None
    method = policy.config if policy is not None else _method_config(config)
    remove_cache(target)
    if isinstance(method, NoCache):
        return None
    pipe, transformer = _split(target)
    policy = policy or policy_for(method)
    engine = CacheEngine(transformer, policy, getattr(method, "current_timestep_callback", None),
                         getattr(method, "num_inference_steps", None)).install()
    engine.detach_scheduler = lambda: None
    if pipe is not None:
        _attach_scheduler(pipe, engine)
    return engine


def remove_cache(target):
    """Puts the original blocks and forward back; a no-op when nothing is applied."""
    engine = engine_of(target)
    if engine is None:
        return False
    engine.detach_scheduler()
    engine.remove()
    return True


def summary(target):
    """What the last generation did: steps and blocks computed vs predicted, compute fraction, cache bytes."""
    engine = engine_of(target)
    if engine is None:
        raise PPCacheError("no cache is applied to this model: call ppcache.apply_cache first")
    return engine.summary()


class _GenerationHandle:
    def __init__(self, engine):
        self.engine = engine

    def step(self, index, timestep=None):
        """Declares that the following transformer calls belong to step `index` (timestep on 0..1000)."""
        self.engine.tracker.set_step(index, timestep)


@contextlib.contextmanager
def generation(target, num_steps=None, timesteps=None):
    """Explicit generation context for hand-written sampling loops.

        with ppcache.generation(transformer, num_steps=len(timesteps)) as gen:
            for i, t in enumerate(timesteps):
                gen.step(i, t)
                out = transformer(...)
    """
    engine = engine_of(target)
    if engine is None:
        raise PPCacheError("no cache is applied to this model: call ppcache.apply_cache first")
    engine.tracker.begin_generation(num_steps, timesteps)
    try:
        yield _GenerationHandle(engine)
    finally:
        engine.tracker.end_generation()


# PaddleMIX-shaped helpers ------------------------------------------------------------------------------------
def apply_sort_block(transformer, config):
    return apply_cache(transformer, config)


def apply_teablockcache(transformer, config):
    return apply_cache(transformer, config)


def apply_firstblock_taylor(transformer, config):
    return apply_cache(transformer, config)
