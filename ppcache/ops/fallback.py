"""Eager Paddle implementations: the reference semantics of every fused op, and the path used when the fused
ops are unavailable or forced off (PPCACHE_OPS=eager)."""
import paddle


def divided_differences(value, old_factors, gap, order):
    """New ladder [F_0..F_m] from the new value and the previous factors."""
    factors = [value]
    for k in range(min(order, len(old_factors))):
        factors.append((factors[k] - old_factors[k]) / gap)
    return factors


def ladder_update(factors, value, gap, order):
    """Same values as `divided_differences`; the eager path allocates new tensors."""
    return divided_differences(value, factors, gap, order)


def taylor_eval(factors, coefficients):
    out = factors[0]
    for factor, c in zip(factors[1:], coefficients[1:]):
        out = out + factor * c
    return out


def taylor_eval_add(base, factors, coefficients):
    out = base + factors[0]
    for factor, c in zip(factors[1:], coefficients[1:]):
        out = out + factor * c
    return out


def abs_means(value, reference, per_sample=True):
    """(mean|value - reference|, mean|reference|) in fp32; per sample ([B]) or scalars."""
    axes = list(range(1, value.ndim)) if per_sample else None
    diff = (value.astype("float32") - reference.astype("float32")).abs().mean(axis=axes)
    return diff, reference.astype("float32").abs().mean(axis=axes)


def rel_l1(value, reference, per_sample=True):
    """mean|value - reference| / mean|reference| in fp32; per sample ([B]) or a scalar."""
    diff, ref = abs_means(value, reference, per_sample)
    return diff / (ref + 1e-12)


def channel_cosine(a, b, channels=None):
    """Per-sample mean over tokens of the cosine between a and b on the first `channels` channels, fp32."""
    if channels is not None:
        a, b = a[..., :channels], b[..., :channels]
    a, b = a.astype("float32"), b.astype("float32")
    dot = (a * b).sum(axis=-1)
    norm = a.norm(axis=-1) * b.norm(axis=-1)
    cosine = dot / (norm + 1e-12)
    return cosine.reshape([cosine.shape[0], -1]).mean(axis=1)


def all_finite(tensors):
    """One device-side flag for a list of tensors (callers fold it into their single host sync)."""
    flags = [paddle.isfinite(t).all() for t in tensors if t is not None]
    return paddle.stack(flags).all() if flags else paddle.to_tensor(True)
