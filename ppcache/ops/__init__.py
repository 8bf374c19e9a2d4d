"""Elementwise kernels shared by every predictor and indicator.

This module is the single entry point the engine uses. Each function runs a fused Paddle custom operator
(csrc/ppcache_ops.cc: CPU/OpenMP for float32, float16 and bfloat16; csrc/ppcache_ops.cu when Paddle is built
with CUDA), compiled on first use and cached (see build.py). When the operators cannot be built, when
PPCACHE_OPS=eager is set, or for inputs the kernels do not take, the same function runs the eager Paddle
reference in fallback.py, with the same semantics.

Under sequence parallelism (ppcache.parallel) the indicators (rel_l1, abs_means, token_norm_ratio, channel_cosine,
all_finite) are reduced across the ranks: every rank gets the value of the whole token sequence and so takes the
same decision.
"""
import os

import paddle

from ..parallel.sequence import current as sequence_group
from . import build, fallback

BACKENDS = ("auto", "fused", "eager")
_choice = None  # set_backend() overrides PPCACHE_OPS
_active = None  # the `fused` module while the fused ops are in use
_resolved = False


def _requested():
    choice = _choice or os.environ.get("PPCACHE_OPS", "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"PPCACHE_OPS={choice!r} is not allowed; use one of {', '.join(BACKENDS)}")
    return choice


def _resolve():
    global _active, _resolved
    active, choice = None, _requested()
    if choice != "eager" and build.load(required=choice == "fused"):  # builds once; warns once or raises
        from . import fused as active
    _active, _resolved = active, True
    return active


def _impl():
    return _active if _resolved else _resolve()


def set_backend(name=None):
    """Chooses the implementation for this process: "auto", "fused", "eager", or None (back to PPCACHE_OPS)."""
    global _choice, _resolved, _active
    if name is not None and name not in BACKENDS:
        raise ValueError(f"backend {name!r} is not allowed; use one of {', '.join(BACKENDS)}")
    _choice, _resolved, _active = name, False, None


def backend():
    """"fused" or "eager": what the ops run on now (resolving, and building on first use, if needed)."""
    return "fused" if _impl() is not None else "eager"


def nbytes(tensor):
    return 0 if tensor is None else int(tensor.numel()) * tensor.element_size()


def divided_differences(value, old_factors, gap, order):
    """New ladder [F_0..F_m] from the new value and the previous factors (new tensors; F_0 is `value`)."""
    impl = _impl()
    if impl is not None:
        out = impl.divided_differences(value, old_factors, gap, order)
        if out is not NotImplemented:
            return out
    return fallback.divided_differences(value, old_factors, gap, order)


def ladder_update(factors, value, gap, order):
    """The ladder after recording `value`: the values of divided_differences(value, factors, gap, order), but
    written into the buffers of factors[1:] in place where they fit (no temporaries). The caller must own
    factors[1:] (no other reference may expect their old values); F_0 is `value` itself and is never written."""
    impl = _impl()
    if impl is not None:
        out = impl.ladder_update(factors, value, gap, order)
        if out is not NotImplemented:
            return out
    return fallback.ladder_update(factors, value, gap, order)


def taylor_eval(factors, coefficients):
    """sum_k F_k * c_k with c_0 = 1 (F_0 itself when there is one factor)."""
    impl = _impl()
    if impl is not None:
        out = impl.taylor_eval(factors, coefficients)
        if out is not NotImplemented:
            return out
    return fallback.taylor_eval(factors, coefficients)


def taylor_eval_add(base, factors, coefficients):
    """base + sum_k F_k * c_k, in one pass."""
    impl = _impl()
    if impl is not None:
        out = impl.taylor_eval_add(base, factors, coefficients)
        if out is not NotImplemented:
            return out
    return fallback.taylor_eval_add(base, factors, coefficients)


def rel_l1(value, reference, per_sample=True):
    """mean|value - reference| / mean|reference| in fp32; per sample ([B]) or a scalar."""
    group = sequence_group()
    if group is not None:  # both means over every rank's tokens (equal shards), then the ratio
        diff, ref = fallback.abs_means(value, reference, per_sample)
        diff, ref = group.mean(paddle.stack([diff, ref])).unbind(0)
        return diff / (ref + 1e-12)
    impl = _impl()
    if impl is not None:
        out = impl.rel_l1(value, reference, per_sample)
        if out is not NotImplemented:
            return out
    return fallback.rel_l1(value, reference, per_sample)


def abs_means(value, reference, per_sample=True):
    """(mean|value - reference|, mean|reference|) in fp32, per sample ([B]) or scalars: the two halves of rel_l1
    for indicators that combine them otherwise (EasyCache's transformation rate). Eager: one pass each, off the
    per-block path."""
    diff, ref = fallback.abs_means(value, reference, per_sample)
    group = sequence_group()
    if group is not None:
        diff, ref = group.mean(paddle.stack([diff, ref])).unbind(0)
    return diff, ref


def token_norm_ratio(value, reference):
    """Mean over samples and tokens of ||value|| / ||reference|| (L2 over channels), fp32 scalar: MagCache's
    magnitude ratio, measured during calibration only."""
    value, reference = value.astype("float32"), reference.astype("float32")
    ratio = (value.norm(p=2, axis=-1) / (reference.norm(p=2, axis=-1) + 1e-12)).mean()
    group = sequence_group()
    return ratio if group is None else group.mean(ratio)


def channel_cosine(a, b, channels=None):
    """Per-sample mean over tokens of the cosine between a and b on the first `channels` channels, fp32."""
    impl, out = _impl(), NotImplemented
    if impl is not None:
        out = impl.channel_cosine(a, b, channels)
    if out is NotImplemented:
        out = fallback.channel_cosine(a, b, channels)
    group = sequence_group()
    return out if group is None else group.mean(out)  # a mean over tokens: equal shards average exactly


def all_finite(tensors):
    """One device-side flag for a list of tensors (callers fold it into their single host sync)."""
    impl, out = _impl(), NotImplemented
    if impl is not None:
        out = impl.all_finite(tensors)
    if out is NotImplemented:
        out = fallback.all_finite(tensors)
    group = sequence_group()
    return out if group is None else group.all_true(out)
