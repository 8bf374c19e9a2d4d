"""Import-time environment fixes: quiet Paddle/PaddleNLP, and shims for missing APIs.

Everything here is applied once, before Paddle or PPDiffusers is imported by ppcache.
"""
import logging
import math
import os
import warnings

_NOISY_WARNINGS = (
    "No ccache found",
    "Setuptools is replacing distutils",
    "CUDA is not available or torch_xla is imported",
)


def quiet_environment():
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("FLAGS_call_stack_level", "0")
    for text in _NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=f".*{text}.*")
    # PaddleNLP / datasets log INFO lines at import ("PyTorch version ... available").
    for name in ("paddlenlp", "datasets", "ppdiffusers", "paddle"):
        logging.getLogger(name).setLevel(logging.WARNING)


def patch_huggingface_hub():
    """ppdiffusers 0.29 imports `cached_download`, which huggingface_hub removed in 0.26.

    The parity extra (diffusers/cache-dit) needs a newer hub; ppdiffusers only uses the name for
    remote custom pipelines, which ppcache never loads. Install a stub that fails loudly if called.
    """
    import huggingface_hub

    if not hasattr(huggingface_hub, "cached_download"):

        def cached_download(*args, **kwargs):
            raise RuntimeError("huggingface_hub.cached_download is not available in this huggingface_hub version")

        huggingface_hub.cached_download = cached_download


def _math_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
               training=True, attention_op=None):
    """Reference attention for tensors laid out [batch, seq, heads, head_dim]."""
    import paddle
    import paddle.nn.functional as F

    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    q = paddle.transpose(query, [0, 2, 1, 3])
    k = paddle.transpose(key, [0, 2, 1, 3])
    v = paddle.transpose(value, [0, 2, 1, 3])
    scores = paddle.matmul(q * scale, k, transpose_y=True)
    if is_causal:
        n_q, n_k = scores.shape[-2], scores.shape[-1]
        causal = paddle.triu(paddle.full([n_q, n_k], float("-inf"), dtype=scores.dtype), diagonal=1)
        scores = scores + causal
    elif attn_mask is not None:
        if attn_mask.dtype == paddle.bool:
            attn_mask = paddle.where(attn_mask, paddle.zeros([], scores.dtype), paddle.full([], float("-inf"), scores.dtype))
        scores = scores + attn_mask.cast(scores.dtype)
    probs = F.softmax(scores, axis=-1)
    if dropout_p > 0.0 and training:
        probs = F.dropout(probs, dropout_p, training=True)
    return paddle.transpose(paddle.matmul(probs, v), [0, 2, 1, 3])


def is_cpu_only_build():
    """True when this Paddle build has no accelerator backend (CUDA, ROCm, XPU or a custom device)."""
    import paddle

    checks = ("is_compiled_with_cuda", "is_compiled_with_rocm", "is_compiled_with_xpu")
    if any(getattr(paddle, name, lambda: False)() for name in checks):
        return False
    try:
        return not paddle.device.get_all_custom_device_type()
    except Exception:  # pragma: no cover - API missing in this Paddle
        return True


def select_math_attention_on_cpu():
    """PPDiffusers from the PaddleMIX source tree defines its own `F.scaled_dot_product_attention_`, which picks a
    GPU-only kernel unless `FLAGS_sdpa_select_math` is set (it reads the variable at every call). On a CPU-only
    build, set it unless the user already did; a GPU build's choice is never touched."""
    if is_cpu_only_build():
        os.environ.setdefault("FLAGS_sdpa_select_math", "1")


def install_sdpa_fallback():
    """PyPI's ppdiffusers calls `F.scaled_dot_product_attention_`, which it defines only on GPU builds."""
    import paddle.nn.functional as F

    if not hasattr(F, "scaled_dot_product_attention_"):
        F.scaled_dot_product_attention_ = _math_sdpa
        F._ppcache_sdpa_fallback = True


def _plain_rms_norm(self, hidden_states, begin_norm_axis=None):
    """PPDiffusers' RMSNorm.forward in plain Paddle ops (fp32 statistics, as the fused kernel computes them)."""
    import paddle

    axis = len(hidden_states.shape) - 1 if begin_norm_axis is None else begin_norm_axis
    x = hidden_states.astype("float32")
    y = x * paddle.rsqrt(x.pow(2).mean(axis=list(range(axis, len(x.shape))), keepdim=True) + self.epsilon)
    if self.weight is not None:
        y = y * self.weight.astype("float32")
    return y.astype(hidden_states.dtype)


def plain_rms_norm_on_cpu():
    """PPDiffusers from source normalises q/k in Wan2.1, HunyuanVideo and CogVideoX with `fused_rms_norm` from
    paddle.incubate, which dies with SIGILL on CPUs without its instructions. On a CPU-only build, and only where
    the installed RMSNorm calls that kernel, its forward is replaced by the same math in plain ops."""
    if not is_cpu_only_build():
        return
    try:
        from ppdiffusers.models import normalization
    except Exception:  # pragma: no cover - a PPDiffusers without this module
        return
    rms_norm = getattr(normalization, "RMSNorm", None)
    forward = getattr(rms_norm, "forward", None)
    if forward is not None and "fused_rms_norm" in getattr(forward, "__code__", None).co_names:
        rms_norm.forward = _plain_rms_norm


def shape_randn_in_caption_projection():
    """PPDiffusers' CaptionProjection (PixArt with `caption_channels`) calls `paddle.randn(num_tokens, in_features)`
    torch-style, which Paddle reads as (shape, dtype) and fails: that constructor alone gets a randn that takes the
    shape as separate ints (its buffer is overwritten by the checkpoint's weights anyway)."""
    try:
        from ppdiffusers.models import embeddings
    except Exception:  # pragma: no cover - a PPDiffusers without this module
        return
    cls = getattr(embeddings, "CaptionProjection", None)
    init = getattr(cls, "__init__", None)
    code = getattr(init, "__code__", None)
    if code is None or getattr(init, "_ppcache_shape_randn", False) or "randn" not in code.co_names:
        return
    import paddle

    def init_with_shape_randn(self, *args, **kwargs):
        original = paddle.randn

        def randn(*shape, **options):
            if len(shape) > 1 and all(isinstance(size, int) for size in shape):
                return original(list(shape), **options)
            return original(*shape, **options)

        paddle.randn = randn
        try:
            init(self, *args, **kwargs)
        finally:
            paddle.randn = original

    init_with_shape_randn._ppcache_shape_randn = True
    cls.__init__ = init_with_shape_randn


class _LinalgWithMatchedSolve:
    """`paddle.linalg` whose `solve` computes in one dtype (float64) whatever dtypes its two operands carry."""

    def __init__(self, linalg):
        self._linalg = linalg

    def solve(self, x, y, *args, **kwargs):
        return self._linalg.solve(x.astype("float64"), y.astype("float64"), *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._linalg, name)


class _PaddleWithMatchedSolve:
    """`paddle` as one PPDiffusers module sees it: everything is Paddle's, but `linalg.solve` (see above)."""

    def __init__(self, paddle):
        self._paddle = paddle
        self.linalg = _LinalgWithMatchedSolve(paddle.linalg)

    def __getattr__(self, name):
        return getattr(self._paddle, name)


def unipc_solve_in_one_dtype():
    """PPDiffusers' UniPCMultistepScheduler (what Wan2.1-Diffusers checkpoints ship: flow prediction, flow sigmas)
    solves its corrector's small linear system with a float64 matrix and a float32 right-hand side, which Paddle 3.3
    refuses ("The type of data we are trying to retrieve (float64) does not match"), so a real Wan checkpoint cannot
    take one step. Where the installed scheduler mixes them, that module alone gets a `paddle` whose
    `linalg.solve` casts both operands to float64 (its callers cast the result to the sample's dtype). Remove when
    PPDiffusers solves in one dtype."""
    try:
        from ppdiffusers.schedulers import scheduling_unipc_multistep as unipc
    except Exception:  # pragma: no cover - a PPDiffusers without UniPC
        return
    if isinstance(unipc.__dict__.get("paddle"), _PaddleWithMatchedSolve):
        return
    update = getattr(getattr(unipc, "UniPCMultistepScheduler", None), "multistep_uni_c_bh_update", None)
    code = getattr(update, "__code__", None)
    if code is None or "float32" not in code.co_consts or "solve" not in code.co_names:
        return
    unipc.paddle = _PaddleWithMatchedSolve(unipc.paddle)


_DONE = False


def setup():
    global _DONE
    if _DONE:
        return
    quiet_environment()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import paddle  # noqa: F401

        patch_huggingface_hub()
        import ppdiffusers  # noqa: F401  (imports its own paddle patches first)
    quiet_environment()
    select_math_attention_on_cpu()
    install_sdpa_fallback()
    plain_rms_norm_on_cpu()
    shape_randn_in_caption_projection()
    unipc_solve_in_one_dtype()
    _DONE = True
