"""Quiet import and the CPU attention fallback."""
import os
import subprocess
import sys

import numpy as np
import paddle
import paddle.nn.functional as F

from ppcache._compat import _math_sdpa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_is_quiet():
    result = subprocess.run([sys.executable, "-c", "import ppcache; import ppcache.pipelines.loading"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == "", (result.stdout, result.stderr)


def reference_attention(q, k, v, mask=None):
    q, k, v = (np.transpose(t, (0, 2, 1, 3)).astype(np.float64) for t in (q, k, v))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return np.transpose(probs @ v, (0, 2, 1, 3))


def test_sdpa_fallback_is_installed_and_correct():
    assert hasattr(F, "scaled_dot_product_attention_")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 5, 3, 8)).astype(np.float32) for _ in range(3))
    mask = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    out = _math_sdpa(*map(paddle.to_tensor, (q, k, v)), attn_mask=paddle.to_tensor(mask), training=False)
    np.testing.assert_allclose(out.numpy(), reference_attention(q, k, v, mask), atol=1e-5)
    causal = _math_sdpa(*map(paddle.to_tensor, (q, k, v)), is_causal=True, training=False).numpy()
    upper = np.triu(np.full((5, 5), -np.inf), 1)
    np.testing.assert_allclose(causal, reference_attention(q, k, v, upper), atol=1e-5)
