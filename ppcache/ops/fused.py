"""Calls into the fused custom operators (csrc/ppcache_ops.cc). Each function returns NotImplemented for inputs
the kernels do not take (other dtypes, mismatched shapes or places, empty tensors, autograd), and the caller
then uses the eager fallback, so the two paths always have the same semantics."""
import paddle
from paddle import _C_ops

from . import build

_DTYPES = frozenset((paddle.float32, paddle.float16, paddle.bfloat16))
_run = _C_ops._run_custom_op
_cuda = None


def _cuda_ok():
    global _cuda
    if _cuda is None:
        _cuda = build.has_cuda_kernels()
    return _cuda


def _device_ok(first, tensors):
    """CPU, or CUDA when the library has CUDA kernels; every tensor on the same device."""
    place = first.place
    if not place.is_cpu_place():
        if not (place.is_gpu_place() and _cuda_ok()):
            return False
    for t in tensors:
        if t is not first and not t.place._equals(place):
            return False
    return True


def _supported(tensors, same_shape=True):
    first = tensors[0]
    dtype, shape = first.dtype, first.shape
    if dtype not in _DTYPES or 0 in shape:
        return False
    needs_grad = paddle.is_grad_enabled()
    for t in tensors:
        if t.dtype != dtype or (same_shape and t.shape != shape) or (needs_grad and not t.stop_gradient):
            return False
    return _device_ok(first, tensors)


def _terms(factors, coefficients):
    """Factors the eager loop uses: F0 plus zip(factors[1:], coefficients[1:])."""
    return 1 + max(0, min(len(factors), len(coefficients)) - 1)


def taylor_eval(factors, coefficients):
    m = _terms(factors, coefficients)
    if m == 1:
        return factors[0]  # eager returns F0 itself
    factors = list(factors[:m])
    if m > 4 or not _supported(factors):
        return NotImplemented
    return _run("ppcache_taylor_eval", factors, [float(c) for c in coefficients[1:m]])[0]


def taylor_eval_add(base, factors, coefficients):
    m = _terms(factors, coefficients)
    factors = list(factors[:m])
    if m > 4 or not _supported([base] + factors):
        return NotImplemented
    return _run("ppcache_taylor_eval_add", base, factors, [float(c) for c in coefficients[1:m]])[0]


def _reusable(buffer, value):
    """A buffer the kernel can write in place: Paddle hands a custom op a contiguous copy of a strided view."""
    return (buffer is not None and buffer is not value and buffer.is_contiguous() and buffer.dtype == value.dtype
            and buffer.shape == value.shape and buffer.place._equals(value.place))


def ladder_update(factors, value, gap, order):
    """New ladder [value, F_1..F_n], n = min(order, len(factors)), written into factors[1:] where they fit."""
    n = min(order, len(factors))
    if n == 0:
        return [value]
    old = list(factors[:n])
    if n > 3 or not _supported([value] + old):
        return NotImplemented
    out = []
    for k in range(1, n + 1):
        buffer = factors[k] if k < len(factors) else None
        out.append(buffer if _reusable(buffer, value) else paddle.empty_like(value))
    _run("ppcache_ladder_update", value, old, out, float(gap))
    return [value] + out


def divided_differences(value, old_factors, gap, order):
    """Out of place: fresh F_1..F_n, the old factors untouched."""
    n = min(order, len(old_factors))
    if n == 0:
        return [value]
    old = list(old_factors[:n])
    if n > 3 or not _supported([value] + old):
        return NotImplemented
    out = [paddle.empty_like(value) for _ in range(n)]
    _run("ppcache_ladder_update", value, old, out, float(gap))
    return [value] + out


def rel_l1(value, reference, per_sample=True):
    if (per_sample and value.ndim < 2) or not _supported([value, reference]):
        return NotImplemented
    return _run("ppcache_rel_l1", value, reference, bool(per_sample))[0]


def channel_cosine(a, b, channels=None):
    if a.ndim < 2 or a.ndim != b.ndim or a.shape[:-1] != b.shape[:-1]:
        return NotImplemented
    ca, cb = a.shape[-1], b.shape[-1]
    if channels is None:
        if ca != cb:
            return NotImplemented
        k = ca
    else:
        channels = int(channels)
        if channels <= 0 or min(channels, ca) != min(channels, cb):
            return NotImplemented
        k = min(channels, ca)
    if not _supported([a, b], same_shape=False):
        return NotImplemented
    return _run("ppcache_channel_cosine", a, b, k)[0]


def all_finite(tensors):
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return NotImplemented
    first = tensors[0]
    for t in tensors:
        if t.dtype not in _DTYPES or 0 in t.shape:
            return NotImplemented
    if not _device_ok(first, tensors):
        return NotImplemented
    return _run("ppcache_all_finite", tensors)[0]
