"""Peers side by side: cache-dit's DBCache (with and without TaylorSeer), diffusers' FirstBlockCache, TaylorSeer and
MagCache hooks, run in torch on the same transformer weights, prompt embeddings and initial noise as
ppcache's runs.

Needs the optional `parity` extra (torch, diffusers, cache-dit). The peer pipeline is diffusers' own FluxPipeline
or PixArtAlphaPipeline (`peer_families.py`), built from the same diffusers-format directory that ppcache loads;
ppcache supplies the prompt embeddings (`encode_prompt`) and the initial noise (`prepare_latents` with the seed's
Paddle generator), so an uncached peer run reproduces ppcache's uncached image (the first row returned is that
parity check).

- speed-up: the peer's own uncached vs cached wall time in torch: uncached and cached calls interleaved image by
  image (after one untimed warm-up of each), median of the pairs' ratios, as for ppcache's own rows;
- quality: SSIM / PSNR against the ppcache uncached references passed in;
- compute fraction: transformer block work actually run / full, counted per block component (attention through
  its query projection, which a skipped or predicted attention never reaches; the MLPs and output projections)
  with forward pre-hooks, weighted by ppcache's per-component MAC model so that it means the same as ppcache's own
  compute fraction (`blocks_fraction` counts the blocks whose attention ran).
"""
import contextlib
import dataclasses
import logging
import os
import statistics
import time
from typing import Tuple

import numpy as np

from ..config import DEFAULT_RESOLUTION
from ..errors import PPCacheError
from .metrics import psnr, ssim, temporal_ssim
from .peer_families import default_guidance, peer_family

INSTALL_HINT = 'pip install -e ".[parity]"'


class MissingDependencyError(PPCacheError, ImportError):
    """An optional dependency (extra) is not installed."""


@dataclasses.dataclass(frozen=True)
class PeerConfig:
    """One peer point. `framework` is "cache-dit" (DBCache with `threshold`; `taylorseer_order` > 0 adds its
    TaylorSeer calibrator) or "diffusers" (method "FirstBlockCache" with `threshold`; "TaylorSeerCache": its
    TaylorSeer hook with `interval` and `taylorseer_order`; "MagCache": its MagCache hook with `threshold` and
    `max_skip_steps`, on the model's magnitude curve)."""

    name: str
    framework: str
    method: str
    threshold: float = 0.0
    taylorseer_order: int = 0
    interval: int = 0
    max_skip_steps: int = 0


# cache-dit settings shared by every DBCache point. cache-dit's defaults (F8B0, 8 warm-up steps) are meant for
# 28-50 step runs of 57-block FLUX.1; the bundled model has 12 blocks and is sampled with ~20 steps, so: the first
# block computes the residual-diff indicator and the last block always runs (F1B1, cache-dit's small-model
# setting), and the warm-up is a tenth of the steps (at least one).
DBCACHE_FN_COMPUTE_BLOCKS = 1
DBCACHE_BN_COMPUTE_BLOCKS = 1
DBCACHE_WARMUP_FRACTION = 0.1
TAYLORSEER_ORDER = 1

# diffusers' TaylorSeer hook: its defaults (3 warm-up steps, first order), with the Taylor factors kept in float32
# (its default bfloat16 would add rounding that ppcache's fp32 ladders do not have).
TAYLORSEER_WARMUP = 3

DBCACHE_THRESHOLDS = (0.12, 0.2, 0.3, 0.45, 0.6, 0.8)
FIRST_BLOCK_THRESHOLDS = (0.1, 0.2, 0.3, 0.45, 0.6)
TAYLORSEER_INTERVALS = (2, 3, 4, 5)
# diffusers' MagCache hook: its default retention (0.2) and K = 3, and K = 6 for the cheap end.
MAGCACHE_POINTS = ((0.03, 3), (0.06, 3), (0.12, 3), (0.24, 3), (0.24, 6), (0.5, 6))


def _peer_configs():
    configs = []
    for threshold in DBCACHE_THRESHOLDS:
        configs.append(PeerConfig(f"cache-dit DBCache rdt={threshold}", "cache-dit", "DBCache", threshold))
        configs.append(PeerConfig(f"cache-dit DBCache+TaylorSeer rdt={threshold}", "cache-dit", "DBCache+TaylorSeer",
                                  threshold, TAYLORSEER_ORDER))
    configs += [PeerConfig(f"diffusers FirstBlockCache t={t}", "diffusers", "FirstBlockCache", t)
                for t in FIRST_BLOCK_THRESHOLDS]
    configs += [PeerConfig(f"diffusers TaylorSeerCache N={n}", "diffusers", "TaylorSeerCache",
                           taylorseer_order=TAYLORSEER_ORDER, interval=n) for n in TAYLORSEER_INTERVALS]
    configs += [PeerConfig(f"diffusers MagCache t={t} K={k}", "diffusers", "MagCache", t, max_skip_steps=k)
                for t, k in MAGCACHE_POINTS]
    return tuple(configs)


# Each framework's points spread over the compute budgets (about 0.3 to 0.8 of full on the bundled model).
PEER_CONFIGS: Tuple[PeerConfig, ...] = _peer_configs()

UNCACHED_NAME = "diffusers uncached (parity)"


def import_peers():
    """(torch, diffusers, cache_dit), or a one-line MissingDependencyError naming the install command."""
    missing = []
    modules = {}
    for name in ("torch", "diffusers", "cache_dit"):
        try:
            modules[name] = __import__(name)
        except ImportError:
            missing.append(name.replace("_", "-"))
    if missing:
        raise MissingDependencyError(f"peer comparison needs {', '.join(missing)}: {INSTALL_HINT}")
    return modules["torch"], modules["diffusers"], modules["cache_dit"]


def paddle_threads():
    """Math threads of ppcache's Paddle runs (FLAGS_paddle_num_threads, 1 unless set)."""
    try:
        import paddle

        return max(1, int(paddle.get_flags(["FLAGS_paddle_num_threads"])["FLAGS_paddle_num_threads"]))
    except Exception:  # pragma: no cover - flag renamed or unreadable
        return 1


@contextlib.contextmanager
def _torch_threads(torch, threads):
    """torch's intra-op threads for the run, restored afterwards. On a loaded 2-core machine torch's default
    (all cores) is 20-60x slower than one thread on the bundled model and its timings are noise."""
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _quiet_cache_dit():
    """cache-dit logs every enable/disable at INFO/WARNING on its own stdout handler; mute it for the run."""
    try:
        from cache_dit import logger as cache_dit_logger
        handler = getattr(cache_dit_logger, "_default_handler", None)
    except ImportError:  # pragma: no cover - import_peers already checked
        handler = None
    level = handler.level if handler is not None else None
    if handler is not None:
        handler.setLevel(logging.ERROR)
    try:
        yield
    finally:
        if handler is not None:
            handler.setLevel(level)


def _component_modules(block, names):
    """Each component's module whose call means the component ran: the attention's query projection (the
    attention module itself may be called and then predicted, as diffusers' TaylorSeer hook does)."""
    modules = [getattr(block, name) for name in names]
    return [getattr(module, "to_q", module) for module in modules]


class BlockCounter:
    """Counts transformer calls and, per block component and per call, the components that ran."""

    def __init__(self, transformer, blocks, weights):
        """`blocks`: the transformer's blocks; `weights`: per block, {component name: MACs}, attention first."""
        self.blocks = blocks
        self.weights = [list(w.values()) for w in weights]
        self.handles = [transformer.register_forward_pre_hook(self._on_transformer)]
        for index, (block, names) in enumerate(zip(self.blocks, weights)):
            for slot, module in enumerate(_component_modules(block, list(names))):
                self.handles.append(module.register_forward_pre_hook(self._on_component(index, slot)))
        self.reset()

    def _on_transformer(self, module, args):
        self.per_call.append(0)

    def _on_component(self, index, slot):
        def hook(module, args):
            self.counts[index][slot] += 1
            if slot == 0 and self.per_call:  # attention: one per block call
                self.per_call[-1] += 1
        return hook

    def reset(self):
        self.counts = [[0] * len(w) for w in self.weights]
        self.per_call = []

    def stats(self, images):
        """Compute fraction (MAC-weighted), block fraction, and per image: GMACs run, blocks computed and full
        steps (transformer calls that ran every block's attention), over the calls since reset."""
        calls = len(self.per_call)
        if not calls:
            return dict(compute_fraction=1.0, blocks_fraction=1.0)
        run = sum(c * w for counts, weights in zip(self.counts, self.weights) for c, w in zip(counts, weights))
        full = calls * sum(sum(w) for w in self.weights)
        attention_runs = sum(counts[0] for counts in self.counts)
        return dict(compute_fraction=run / full, blocks_fraction=attention_runs / (calls * len(self.blocks)),
                    gmacs=run / images / 1e9, blocks_computed=attention_runs / images,
                    steps_computed=sum(n == len(self.blocks) for n in self.per_call) / images)

    def remove(self):
        for handle in self.handles:
            handle.remove()


def _generate(torch, pipe, inputs, steps, height, width, guidance_scale):
    """`inputs`: {call argument: numpy array} (the prompt embeddings and the initial noise) plus the family's own
    call arguments."""
    arguments = {name: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                 for name, value in inputs.items()}
    start = time.perf_counter()
    with torch.no_grad():
        out = pipe(**arguments, num_inference_steps=steps, height=height, width=width,
                   guidance_scale=guidance_scale, output_type="np")
    result = out.frames[0] if hasattr(out, "frames") else out.images[0]  # a video: [F, H, W, 3]
    return np.asarray(result, dtype=np.float64), time.perf_counter() - start


def _enable(cache_dit, diffusers, pipe, config: PeerConfig, steps, family, magnitude_ratios=None):
    if config.framework == "cache-dit":
        from cache_dit import DBCacheConfig, TaylorSeerCalibratorConfig

        cache_config = DBCacheConfig(
            Fn_compute_blocks=DBCACHE_FN_COMPUTE_BLOCKS, Bn_compute_blocks=DBCACHE_BN_COMPUTE_BLOCKS,
            residual_diff_threshold=config.threshold,
            max_warmup_steps=max(1, round(DBCACHE_WARMUP_FRACTION * steps)), num_inference_steps=steps)
        calibrator = (TaylorSeerCalibratorConfig(taylorseer_order=config.taylorseer_order)
                      if config.taylorseer_order else None)
        cache_dit.enable_cache(pipe, cache_config=cache_config, calibrator_config=calibrator)
    elif config.framework == "diffusers" and config.method == "TaylorSeerCache":
        import torch
        from diffusers.hooks import TaylorSeerCacheConfig

        pipe.transformer.enable_cache(TaylorSeerCacheConfig(
            cache_interval=config.interval, disable_cache_before_step=TAYLORSEER_WARMUP,
            max_order=config.taylorseer_order, taylor_factors_dtype=torch.float32,
            cache_identifiers=family.taylorseer_identifiers))
    elif config.framework == "diffusers" and config.method == "MagCache":
        from diffusers.hooks import MagCacheConfig

        pipe.transformer.enable_cache(MagCacheConfig(
            threshold=config.threshold, max_skip_steps=config.max_skip_steps, num_inference_steps=steps,
            mag_ratios=list(magnitude_ratios)))
    elif config.framework == "diffusers":
        pipe.transformer.enable_cache(diffusers.FirstBlockCacheConfig(threshold=config.threshold))
    else:
        raise ValueError(f"unknown peer framework {config.framework!r}")


def _disable(cache_dit, pipe, config: PeerConfig):
    if config.framework == "cache-dit":
        cache_dit.disable_cache(pipe)
    else:
        pipe.transformer.disable_cache()


def peer_rows(model_dir, cases, steps, references, height=DEFAULT_RESOLUTION, width=DEFAULT_RESOLUTION, repeats=1,
              configs=None, guidance_scale=None, threads=None, progress=None, ppcache_pipe=None,
              magcache_calibration=None):
    """One row per peer config (plus a first row, `UNCACHED_NAME`, the uncached diffusers run's match with the
    ppcache references, `parity: True`, `max_abs_diff`): name, framework, method, steps, compute_fraction,
    blocks_fraction, gmacs, blocks_computed and steps_computed (per image), ssim, ssim_min, psnr, speedup,
    speedup_min, speedup_max, seconds_uncached, seconds_cached, cases, threads, and images (the peer's images, cases
    order; not a scalar, so tables drop it).

    `cases`: [(prompt, seed)]; `references`: ppcache's uncached images (float [H, W, 3] in [0, 1]) in the same
    order, made with the same steps, height and width (`guidance_scale`: the ppcache pipeline's default when None,
    as the benchmark's samples).
    `threads`: torch's intra-op threads during the run (default: the same as ppcache's Paddle runs,
    `FLAGS_paddle_num_threads`). `progress(done, total)` is called after every generated image.
    `ppcache_pipe`: an already loaded ppcache pipeline of `model_dir` (only its text encoders and noise are used;
    loaded from `model_dir` when None).
    `magcache_calibration`: the magnitude curve diffusers' MagCache points run on (a MagCache `calibration` mapping,
    e.g. the one ppcache's own MagCache config holds, so both run on the same curve; its first branch, resampled to
    `steps`); when None, ppcache calibrates the model on the first case."""
    torch, diffusers, cache_dit = import_peers()
    from ..config import resolve_model_path
    from ..errors import ConfigError
    from ..pipelines.components import read_model_index
    from ..pipelines.loading import load_pipeline

    cases = [(str(prompt), int(seed)) for prompt, seed in cases]
    if len(references) != len(cases):
        raise ConfigError(f"peer_rows: {len(cases)} cases but {len(references)} reference images")
    if not cases:
        raise ConfigError("peer_rows: no (prompt, seed) cases")
    configs = list(PEER_CONFIGS if configs is None else configs)
    repeats = max(1, int(repeats))
    model_path = resolve_model_path(model_dir)
    family = peer_family(read_model_index(model_path).get("_class_name"), model_path)

    pp = load_pipeline(model_path) if ppcache_pipe is None else ppcache_pipe
    inputs = [dict(family.inputs(pp, prompt, seed, height, width), **family.call_kwargs()) for prompt, seed in cases]
    weights = family.block_weights(pp.transformer, inputs[0])
    guidance_scale = default_guidance(pp) if guidance_scale is None else guidance_scale
    ratios = None
    if any(config.method == "MagCache" for config in configs):
        ratios = _magnitude_ratios(pp, magcache_calibration, cases[0], steps, height, width)
    del pp

    total = len(cases) * (1 + 2 * repeats * len(configs))
    done = [0]

    def tick():
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    threads = paddle_threads() if threads is None else max(1, int(threads))
    with _quiet_cache_dit(), _torch_threads(torch, threads):
        base = family.build(diffusers, model_path)
        base_counter = BlockCounter(base.transformer, family.blocks(base.transformer), weights)

        def cached_pipeline():
            """A fresh pipeline per peer point: cache hooks never touch the uncached pipeline, and no point inherits
            another's leftovers (cache-dit's disable_cache leaves its patched forward; diffusers 0.39's hook registry
            keeps a stale child list across enable/disable_cache, diffusers issue #14037)."""
            return family.build(diffusers, model_path, vae=base.vae,
                                scheduler=type(base.scheduler).from_config(base.scheduler.config))

        try:
            _generate(torch, base, inputs[0], steps, height, width, guidance_scale)  # warm-up
            base_counter.reset()
            uncached_images, uncached_times = [], []
            for item in inputs:
                image, seconds = _generate(torch, base, item, steps, height, width, guidance_scale)
                uncached_images.append(image)
                uncached_times.append(seconds)
                tick()
            row = _row(UNCACHED_NAME, "diffusers", "none", steps, uncached_images, references,
                       base_counter.stats(len(inputs)), uncached_times, uncached_times)
            row.update(parity=True, max_abs_diff=float(max(np.abs(a - np.asarray(r, np.float64)).max()
                                                           for a, r in zip(uncached_images, references))))
            rows = [row]
            for config in configs:
                rows.append(_run_config(torch, diffusers, cache_dit, config, base, cached_pipeline(), weights, inputs,
                                        steps, height, width, guidance_scale, references, repeats, tick, family,
                                        ratios))
        finally:
            base_counter.remove()
    for row in rows:
        row["threads"] = threads
    return rows


def _magnitude_ratios(pipe, calibration, case, steps, height, width):
    """The first branch of a MagCache curve at `steps` steps: from `calibration`, else measured on `case`."""
    from ..policies.magcache import MagnitudeCurve
    from .calibration import calibrate_magcache

    if calibration is None:
        curve = calibrate_magcache(pipe, [case], steps, height, width)
    else:
        curve = MagnitudeCurve.load(calibration, "magcache_calibration")
    return curve.for_steps(steps)


def _row(name, framework, method, steps, images, references, counts, uncached_times, cached_times):
    """A row in the columns of ppcache.bench.report (speed-up: median of the interleaved pairs' ratios)."""
    scores = [ssim(a, r) for a, r in zip(images, references)]
    ratios = [u / c for u, c in zip(uncached_times, cached_times)]
    video = np.asarray(images[0]).ndim == 4
    temporal = float(np.mean([temporal_ssim(a, r) for a, r in zip(images, references)])) if video else float("nan")
    return dict(name=name, framework=framework, method=method, steps=steps, **counts,
                ssim=float(np.mean(scores)), ssim_min=float(min(scores)), temporal_ssim=temporal,
                psnr=float(np.mean([min(psnr(a, r), 100.0) for a, r in zip(images, references)])),
                speedup=float(statistics.median(ratios)), speedup_min=float(min(ratios)),
                speedup_max=float(max(ratios)), seconds_uncached=float(statistics.median(uncached_times)),
                seconds_cached=float(statistics.median(cached_times)), cases=len(images), images=images)


def _run_config(torch, diffusers, cache_dit, config, base, cached, weights, inputs, steps, height, width,
                guidance_scale, references, repeats, tick, family, magnitude_ratios=None):
    counter = BlockCounter(cached.transformer, family.blocks(cached.transformer), weights)
    _enable(cache_dit, diffusers, cached, config, steps, family, magnitude_ratios)
    try:
        _generate(torch, cached, inputs[0], steps, height, width, guidance_scale)  # warm-up
        counter.reset()
        images, uncached_times, cached_times = [None] * len(inputs), [], []
        for repeat in range(repeats):
            for index, item in enumerate(inputs):
                uncached_times.append(_generate(torch, base, item, steps, height, width, guidance_scale)[1])
                tick()
                image, seconds = _generate(torch, cached, item, steps, height, width, guidance_scale)
                cached_times.append(seconds)
                tick()
                images[index] = image  # cached runs are deterministic: every repeat gives the same image
        counts = counter.stats(len(inputs) * repeats)  # every repeat runs the same blocks
    finally:
        _disable(cache_dit, cached, config)
        counter.remove()
    row = _row(config.name, config.framework, config.method, steps, images, references, counts, uncached_times,
               cached_times)
    row.update(threshold=config.threshold, taylorseer_order=config.taylorseer_order, interval=config.interval,
               max_skip_steps=config.max_skip_steps)
    return row
