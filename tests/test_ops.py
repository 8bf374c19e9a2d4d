"""Fused custom operators (ppcache/ops) against the eager fallback, the forced fallback, and build failures.

With PPCACHE_OPS=eager (the CI job that exercises the fallback) the fused-vs-fallback comparisons are skipped;
otherwise a fused build that fails makes them fail, not skip.
"""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import paddle
import pytest

import ppcache  # noqa: F401  (quiet Paddle first)
from ppcache import ops
from ppcache.ops import build, fallback
from ppcache.predictors import TaylorLadder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORCED_EAGER = os.environ.get("PPCACHE_OPS", "").strip().lower() == "eager"
EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


@pytest.fixture(scope="module")
def fused():
    if FORCED_EAGER:
        pytest.skip("PPCACHE_OPS=eager: this run exercises the fallback only")
    ops.set_backend(None)
    assert build.load(), f"fused ops failed to build: {build.error()}"
    from ppcache.ops import fused as module

    return module


@pytest.fixture
def restore_backend():
    yield
    ops.set_backend(None)


def rand(shape, seed, dtype="float32", scale=1.0, offset=0.0):
    data = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * scale + offset
    return paddle.to_tensor(data).astype(dtype)


def np32(t):
    return t.astype("float32").numpy()


def assert_rel(got, ref, rtol=1e-6):
    """|got - ref| <= rtol * max|ref| (elementwise, relative to the tensor's scale) and identical shapes."""
    got, ref = np32(got), np32(ref)
    assert got.shape == ref.shape
    got, ref = np.atleast_1d(got), np.atleast_1d(ref)
    scale = max(float(np.abs(ref).max()), 1e-30) if ref.size else 1.0
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)


def views(seed, dtype="float32"):
    """Odd shapes: batch > 1, 2-D / 4-D, and non-contiguous slices of larger tensors."""
    return {
        "3d": lambda k: rand([2, 37, 53], seed + k, dtype),
        "2d": lambda k: rand([5, 7], seed + k, dtype),
        "4d": lambda k: rand([3, 2, 5, 11], seed + k, dtype),
        "channel_slice": lambda k: rand([2, 19, 64], seed + k, dtype)[..., 3:44],
        "token_stride": lambda k: rand([2, 40, 24], seed + k, dtype)[:, ::3],
    }


COEFFS = [1.0, 0.7, 0.245, -0.057166]  # x^k / k! with x = 0.7 (order 3), one negative for good measure


# ---- fp32 agreement ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", list(views(0)))
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_prediction_matches_fallback_fp32(fused, layout, order):
    make = views(10 * order)[layout]
    factors = [make(k) for k in range(order + 1)]
    base = make(9)
    assert_rel(fused.taylor_eval_add(base, factors, COEFFS), fallback.taylor_eval_add(base, factors, COEFFS))
    got = fused.taylor_eval(factors, COEFFS)
    assert_rel(got, fallback.taylor_eval(factors, COEFFS))
    if order == 0:
        assert got is factors[0]  # eager returns F0 itself; so does the fused path
    # the public entry point takes the fused path for these inputs and gives the same answer
    assert_rel(ops.taylor_eval_add(base, factors, COEFFS), fallback.taylor_eval_add(base, factors, COEFFS))


def test_prediction_follows_eager_zip_truncation(fused):
    factors = [rand([2, 9, 5], k) for k in range(4)]
    base = rand([2, 9, 5], 7)
    for coefficients in ([1.0], [1.0, 0.5], [1.0, 2.0, 3.0, 4.0, 5.0]):
        assert_rel(fused.taylor_eval_add(base, factors, coefficients),
                   fallback.taylor_eval_add(base, factors, coefficients))
        assert_rel(fused.taylor_eval(factors, coefficients), fallback.taylor_eval(factors, coefficients))


@pytest.mark.parametrize("layout", list(views(0)))
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("old_len", [1, 2, 3, 4])
def test_divided_differences_match_fallback_fp32(fused, layout, order, old_len):
    make = views(100 + order + old_len)[layout]
    value, gap = make(0), 3.0
    old = [make(k + 1) for k in range(old_len)]
    before = [np32(t) for t in old]
    reference = fallback.divided_differences(value, old, gap, order)
    pure = fused.divided_differences(value, old, gap, order)
    assert len(pure) == len(reference) and pure[0] is value
    for got, ref in zip(pure, reference):
        assert_rel(got, ref)
    for t, b in zip(old, before):  # out of place: old factors untouched
        np.testing.assert_array_equal(np32(t), b)

    ladder = list(old)
    updated = fused.ladder_update(ladder, value, gap, order)
    assert len(updated) == len(reference) and updated[0] is value
    for got, ref in zip(updated, reference):
        assert_rel(got, ref)
    # in place: the new F_1..F_n live in the old F_1.. buffers wherever those can be written (contiguous)
    for k in range(1, len(updated)):
        assert updated[k].is_contiguous()
        if k < old_len:
            assert (updated[k] is old[k]) == old[k].is_contiguous()


def test_large_fp32_outputs_are_bit_identical(fused):
    """Outputs of 8 MiB and more take the streaming-store path; an odd element count exercises its tail."""
    shape = [2, 1031, 1021]  # 2,105,302 elements (8.4 MB), not a multiple of 4
    factors, base, value = [rand(shape, k) for k in range(4)], rand(shape, 7), rand(shape, 8)
    for m in (1, 2, 3, 4):
        np.testing.assert_array_equal(fused.taylor_eval_add(base, factors[:m], COEFFS).numpy(),
                                      fallback.taylor_eval_add(base, factors[:m], COEFFS).numpy())
        np.testing.assert_array_equal(fused.taylor_eval(factors[:m], COEFFS).numpy(),
                                      fallback.taylor_eval(factors[:m], COEFFS).numpy())
    for order in (1, 2, 3):
        old = [f.clone() for f in factors]
        reference = fallback.divided_differences(value, old, 3.0, order)
        updated = fused.ladder_update(old, value, 3.0, order)
        assert all(updated[k] is old[k] for k in range(1, order + 1))
        for got, ref in zip(updated, reference):
            np.testing.assert_array_equal(got.numpy(), ref.numpy())


def test_ladder_update_through_taylor_ladder(fused, restore_backend):
    """TaylorLadder (predictors.py) gives the same predictions on both backends; the fused one reuses buffers."""
    steps = [(0, True), (1, True), (2, False), (3, True), (5, True), (6, True), (9, True), (10, True)]
    values = [rand([2, 33, 21], 500 + i) for i in range(len(steps))]
    results = {}
    for name in ("eager", "fused"):
        ops.set_backend(name)
        assert ops.backend() == name
        ladder, predictions, buffers = TaylorLadder(3), [], []
        for (step, allow), value in zip(steps, values):
            ladder.update(value, step, allow_higher=allow)
            buffers.append([id(f) for f in ladder.factors[1:]])
            base = rand([2, 33, 21], 900 + step)
            predictions.append((ladder.predict(step + 1), ladder.predict_add(base, step + 2)))
        results[name] = (predictions, buffers, ladder.nbytes())
    for (a1, a2), (b1, b2) in zip(*(results[n][0] for n in ("eager", "fused"))):
        assert_rel(b1, a1, rtol=1e-5)  # order-3 ladders amplify the last-ulp difference of F_0 - F_0'
        assert_rel(b2, a2, rtol=1e-5)
    assert results["eager"][2] == results["fused"][2]
    fused_buffers = results["fused"][1]
    assert fused_buffers[-1][:2] == fused_buffers[-2][:2] and len(fused_buffers[-1]) == 3  # F1, F2 reused


@pytest.mark.parametrize("layout", list(views(0)))
def test_rel_l1_matches_fallback_fp32(fused, layout):
    make = views(200)[layout]
    a, b = make(0), make(1)
    for per_sample in (True, False):
        got, ref = fused.rel_l1(a, b, per_sample), fallback.rel_l1(a, b, per_sample)
        assert got.shape == ref.shape and got.dtype == paddle.float32
        assert_rel(got, ref)
    assert float(fused.rel_l1(a, a).max()) == 0.0


def test_reductions_are_exact_against_float64_on_large_inputs(fused):
    """Eager Paddle's fp32 mean drifts on large tensors; the fused reductions stay within 1e-6 of float64."""
    a, b = rand([2, 640, 1111], 1), rand([2, 640, 1111], 2, scale=0.1, offset=0.3)
    an, bn = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
    truth = np.abs(an - bn).mean((1, 2)) / np.abs(bn).mean((1, 2))
    np.testing.assert_allclose(fused.rel_l1(a, b).numpy(), truth, rtol=1e-6)
    k = 139
    x, y = an[..., :k], bn[..., :k]
    cos = ((x * y).sum(-1) / (np.sqrt((x * x).sum(-1)) * np.sqrt((y * y).sum(-1)))).mean(1)
    np.testing.assert_allclose(fused.channel_cosine(a, b, k).numpy(), cos, rtol=1e-6)


@pytest.mark.parametrize("layout", list(views(0)))
@pytest.mark.parametrize("channels", [None, 1, 5, 13, 10_000])
def test_channel_cosine_matches_fallback_fp32(fused, layout, channels):
    make = views(300)[layout]
    a, b = make(0), make(1)
    b = b + 0.5 * a  # correlated, so the cosine is far from 0
    got, ref = fused.channel_cosine(a, b, channels), fallback.channel_cosine(a, b, channels)
    assert got.shape == ref.shape and got.dtype == paddle.float32
    assert_rel(got, ref)


def test_channel_cosine_reference_with_fewer_channels(fused):
    """SortBlock's call: the stored reference holds only the first C/8 channels (a non-contiguous slice)."""
    full_ref, residual = rand([2, 30, 45], 1), rand([2, 30, 45], 2)
    channels = 45 // 8
    reference = full_ref[..., :channels]
    assert not reference.is_contiguous()
    got = fused.channel_cosine(reference, residual, reference.shape[-1])
    assert_rel(got, fallback.channel_cosine(reference, residual, reference.shape[-1]))
    assert fused.channel_cosine(reference, residual, None) is NotImplemented  # eager would broadcast or fail


def test_all_finite_matches_fallback(fused):
    a, b = rand([2, 9, 7], 1), rand([3, 5], 2, "bfloat16")
    assert bool(fused.all_finite([a, None, b])) and bool(fallback.all_finite([a, None, b]))
    for bad in (float("inf"), float("-inf"), float("nan")):
        c = rand([2, 9, 7], 3).astype("float16")
        c[1, 4, 6] = bad
        assert not bool(fused.all_finite([a, c])) and not bool(fallback.all_finite([a, c]))
    assert fused.all_finite([None]) is NotImplemented and bool(ops.all_finite([None]))
    assert fused.all_finite([a]).shape == fallback.all_finite([a]).shape == []


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_public_ops_match_a_float64_reference(order, restore_backend):
    """Whatever backend is active (fused, or the fallback under PPCACHE_OPS=eager), the public ops compute the
    documented formulas."""
    ops.set_backend(None)
    make = views(700 + order)["channel_slice"]
    factors, base, value = [make(k) for k in range(order + 1)], make(8), make(9)
    f64 = [np32(t).astype(np.float64) for t in factors]
    expected = sum(f * c for f, c in zip(f64, COEFFS))
    np.testing.assert_allclose(np32(ops.taylor_eval(factors, COEFFS)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np32(ops.taylor_eval_add(base, factors, COEFFS)),
                               np32(base).astype(np.float64) + expected, rtol=1e-5, atol=1e-5)
    ladder, gap = list(factors), 2.0
    want = [np32(value).astype(np.float64)]
    for k in range(min(order, len(f64))):
        want.append((want[k] - f64[k]) / gap)
    got = ops.ladder_update(ladder, value, gap, order)
    assert len(got) == len(want) and got[0] is value
    for g, w in zip(got, want):
        np.testing.assert_allclose(np32(g), w, rtol=1e-5, atol=1e-5)
    a, b = np32(base).astype(np.float64), np32(value).astype(np.float64)
    rel = np.abs(a - b).mean((1, 2)) / np.abs(b).mean((1, 2))
    np.testing.assert_allclose(ops.rel_l1(base, value).numpy(), rel, rtol=1e-5)
    x, y = a[..., :11], b[..., :11]
    cos = ((x * y).sum(-1) / (np.sqrt((x * x).sum(-1)) * np.sqrt((y * y).sum(-1)))).mean(1)
    np.testing.assert_allclose(ops.channel_cosine(base, value, 11).numpy(), cos, rtol=1e-5, atol=1e-6)
    assert bool(ops.all_finite([base, None, value]))
    assert not bool(ops.all_finite([base, value / 0.0]))


# ---- fp16 / bf16 ------------------------------------------------------------------------------------------
def upcast_reference(fn, *tensor_args, dtype):
    """The eager formula on float32 copies, rounded to `dtype` (eager CPU Paddle lacks fp16/bf16 add)."""
    def up(x):
        if isinstance(x, list):
            return [t.astype("float32") for t in x]
        return x.astype("float32")
    out = fn(*[up(x) for x in tensor_args])
    return [o.astype(dtype) for o in out] if isinstance(out, list) else out.astype(dtype)


def assert_close_in_dtype(got, ref, dtype, scale, ulps=4):
    assert got.dtype == ref.dtype
    np.testing.assert_allclose(np32(got), np32(ref), rtol=ulps * EPS[dtype], atol=ulps * EPS[dtype] * scale)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("layout", ["3d", "channel_slice", "token_stride"])
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_half_precision_within_dtype_rounding(fused, dtype, layout, order):
    make = views(40 + order, dtype)[layout]
    factors = [make(k) for k in range(order + 1)]
    base = make(9)
    scale = 1 + sum(abs(c) for c in COEFFS)  # inputs are O(1); the result is a sum of O(scale) terms
    scale *= max(float(np.abs(np32(t)).max()) for t in factors + [base])
    got = fused.taylor_eval_add(base, factors, COEFFS)
    ref = upcast_reference(lambda b, f: fallback.taylor_eval_add(b, f, COEFFS), base, factors, dtype=dtype)
    assert_close_in_dtype(got, ref, dtype, scale)
    got = fused.taylor_eval(factors, COEFFS)
    ref = upcast_reference(lambda f: fallback.taylor_eval(f, COEFFS), factors, dtype=dtype)
    assert_close_in_dtype(got, ref, dtype, scale)
    if order:
        value, gap = make(20), 2.0
        old = [make(30 + k) for k in range(order + 1)]
        ref = upcast_reference(lambda v, o: fallback.divided_differences(v, o, gap, order), value, old, dtype=dtype)
        magnitude = max(float(np.abs(np32(t)).max()) for t in old + [value])
        new = fused.ladder_update(list(old), value, gap, order)  # overwrites old[1:]
        for k, (g, r) in enumerate(zip(new, ref)):
            # F_k sums 2^k rounded terms divided by gap^k; rounding F_{k-1} first adds one ulp of F_{k-1} per level
            assert_close_in_dtype(g, r, dtype, magnitude * (2 / gap) ** k * (k + 1))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("layout", ["3d", "channel_slice", "4d"])
def test_half_precision_reductions_match_fallback(fused, dtype, layout):
    """Both paths convert exactly to float32 first, so they agree to float32 accuracy."""
    make = views(60, dtype)[layout]
    a, b = make(0), make(1)
    assert_rel(fused.rel_l1(a, b), fallback.rel_l1(a, b), rtol=1e-6)
    assert_rel(fused.channel_cosine(a, b, 9), fallback.channel_cosine(a, b, 9), rtol=1e-6)


# ---- dispatch ---------------------------------------------------------------------------------------------
def test_unsupported_inputs_take_the_fallback(fused):
    x64 = paddle.to_tensor(np.random.default_rng(0).standard_normal([2, 3, 4]))
    assert fused.rel_l1(x64, x64 * 2) is NotImplemented
    np.testing.assert_allclose(ops.rel_l1(x64, x64 * 2).numpy(), fallback.rel_l1(x64, x64 * 2).numpy())
    base, factor = rand([1, 3, 4], 1), rand([2, 3, 4], 2)  # broadcasting: eager semantics only
    assert fused.taylor_eval_add(base, [factor], [1.0]) is NotImplemented
    assert_rel(ops.taylor_eval_add(base, [factor], [1.0]), fallback.taylor_eval_add(base, [factor], [1.0]))
    # autograd: inputs that need gradients keep the differentiable eager path
    x = rand([2, 3, 4], 3)
    x.stop_gradient = False
    out = ops.taylor_eval_add(x, [x, x], [1.0, 0.5])
    assert not out.stop_gradient
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full([2, 3, 4], 2.5, np.float32))


def test_forced_fallback_never_calls_the_fused_ops(monkeypatch, restore_backend):
    from ppcache.ops import fused as module

    def boom(*args, **kwargs):
        raise AssertionError("the fused path was used")

    for name in ("taylor_eval", "taylor_eval_add", "ladder_update", "divided_differences", "rel_l1",
                 "channel_cosine", "all_finite"):
        monkeypatch.setattr(module, name, boom)
    ops.set_backend("eager")
    assert ops.backend() == "eager"
    x, y = rand([2, 5, 16], 1), rand([2, 5, 16], 2)
    assert_rel(ops.taylor_eval_add(x, [y, x], [1.0, 0.5]), x + y + x * 0.5)
    assert_rel(ops.ladder_update([x], y, 2.0, 1)[1], (y - x) / 2.0)
    assert_rel(ops.rel_l1(x, y), fallback.rel_l1(x, y))
    assert_rel(ops.channel_cosine(x, y, 3), fallback.channel_cosine(x, y, 3))
    assert bool(ops.all_finite([x, y]))
    with pytest.raises(ValueError, match="not allowed"):
        ops.set_backend("cuda")


def run_python(code, env_extra, timeout=600):
    env = dict(os.environ)
    env.pop("PPCACHE_OPS", None)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


# A cached generation on a small random FLUX transformer, through the engine and every policy's ops calls.
GENERATION = """
import ppcache  # first: it quiets Paddle's import-time warnings
import numpy as np, paddle
from ppcache.models import FluxTransformer2DModel
from ppcache.pipelines.flux import FluxPipeline

def generate(config):
    paddle.seed(0)
    model = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=2, num_single_layers=2,
                                   attention_head_dim=16, num_attention_heads=2, joint_attention_dim=24,
                                   pooled_projection_dim=20, guidance_embeds=False, axes_dims_rope=[4, 6, 6]).eval()
    ppcache.apply_cache(model, config)
    steps = 12
    timesteps = [1000.0 * (1 - i / steps) for i in range(steps)]
    x = paddle.randn([2, 64, 16]); text = paddle.randn([2, 8, 24]); pooled = paddle.randn([2, 20])
    ids, text_ids = FluxPipeline.latent_image_ids(8, 8, "float32"), paddle.zeros([8, 3])
    with paddle.no_grad(), ppcache.generation(model, steps, timesteps) as gen:
        for i, t in enumerate(timesteps):
            gen.step(i, t)
            v = model(x, text, pooled, paddle.to_tensor([t / 1000] * 2), ids, text_ids, return_dict=False)[0]
            x = x - v / steps
    return x.numpy(), ppcache.summary(model)

CONFIGS = [ppcache.SortBlockConfig(), ppcache.FirstBlockTaylorConfig(order=2, threshold=0.5),
           ppcache.TeaBlockCacheConfig(step_gate=True)]
"""


def test_forced_fallback_by_environment_runs_a_generation_without_building(tmp_path):
    cache = tmp_path / "cache"
    code = GENERATION + """
import os
from ppcache import ops
for config in CONFIGS:
    out, stats = generate(config)
    assert np.isfinite(out).all() and stats["blocks_predicted"] > 0, stats
print(ops.backend(), os.path.exists(os.environ["PPCACHE_OPS_CACHE"]))
"""
    result = run_python(code, {"PPCACHE_OPS": "eager", "PPCACHE_OPS_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["eager", "False"] and result.stderr == ""
    bad = run_python("from ppcache import ops; ops.backend()", {"PPCACHE_OPS": "sometimes"})
    assert bad.returncode != 0 and "PPCACHE_OPS='sometimes' is not allowed" in bad.stderr


def test_generation_is_the_same_on_both_backends(fused, tmp_path):
    """Whole cached generations (engine, all three policies) agree between the fused ops and the fallback."""
    code = GENERATION + """
import sys
from ppcache import ops
ops.set_backend(sys.argv[1] if len(sys.argv) > 1 else "auto")
outs = []
for config in CONFIGS:
    out, stats = generate(config)
    outs.append(out)
    print(stats["compute_fraction"], end=" ")
np.save(sys.argv[2], np.stack(outs))
print(ops.backend())
"""
    results = {}
    for name in ("eager", "fused"):
        path = tmp_path / f"{name}.npy"
        env = dict(os.environ)
        env.pop("PPCACHE_OPS", None)
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), name, str(path)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[-1] == name
        results[name] = (proc.stdout.split()[:-1], np.load(path))
    assert results["eager"][0] == results["fused"][0]  # same compute fractions: same cache decisions
    np.testing.assert_allclose(results["fused"][1], results["eager"][1], rtol=1e-4, atol=1e-5)


# ---- build failures and the build itself ------------------------------------------------------------------
@pytest.fixture
def fresh_build_state(monkeypatch, tmp_path):
    """A process that has not loaded the ops yet, with an empty cache (restored afterwards)."""
    monkeypatch.setenv("PPCACHE_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PPCACHE_OPS", raising=False)
    for key, value in (("loaded", None), ("error", None), ("warned", False), ("cuda", False)):
        monkeypatch.setitem(build._state, key, value)
    ops.set_backend(None)
    yield tmp_path / "cache"
    ops.set_backend(None)


def test_simulated_build_failure_warns_once_and_falls_back(fresh_build_state, monkeypatch):
    calls = []

    def failing_compile(build_dir, cuda):
        calls.append(build_dir)
        print("error: simulated compiler failure")  # goes to the build log, not the console
        raise RuntimeError("simulated compiler failure")

    monkeypatch.setattr(build, "_compile", failing_compile)
    x, y = rand([2, 6, 10], 1), rand([2, 6, 10], 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [ops.rel_l1(x, y), ops.taylor_eval_add(x, [y, x], [1.0, 0.25]), ops.channel_cosine(x, y, 3)]
        assert ops.backend() == "eager"
    messages = [str(w.message) for w in caught if issubclass(w.category, build.OpsBuildWarning)]
    assert len(messages) == 1 and "simulated compiler failure" in messages[0], messages
    assert len(calls) == 1
    assert_rel(got[0], fallback.rel_l1(x, y))
    assert_rel(got[1], x + y + x * 0.25)
    assert_rel(got[2], fallback.channel_cosine(x, y, 3))
    log = fresh_build_state / "last-failed-build.log"
    assert "simulated compiler failure" in log.read_text()
    marker = next(fresh_build_state.glob("*.failed"))
    assert "simulated compiler failure" in json.loads(marker.read_text())["error"]

    # the next process remembers the failure (no second 10-second attempt) until the toolchain changes
    for key, value in (("loaded", None), ("error", None), ("warned", False)):
        monkeypatch.setitem(build._state, key, value)
    ops.set_backend(None)
    with pytest.warns(build.OpsBuildWarning, match="remembered"):
        assert ops.backend() == "eager"
    assert len(calls) == 1

    # PPCACHE_OPS=fused turns the failure into an error
    monkeypatch.setenv("PPCACHE_OPS", "fused")
    ops.set_backend(None)
    with pytest.raises(build.OpsBuildError):
        ops.rel_l1(x, y)


def test_machine_without_a_compiler_still_works(tmp_path):
    """No C++ compiler: one warning, eager ops, a complete cached generation."""
    code = GENERATION + """
from ppcache import ops
out, stats = generate(CONFIGS[1])
assert np.isfinite(out).all() and stats["blocks_predicted"] > 0
out, stats = generate(CONFIGS[0])
print(ops.backend())
"""
    result = run_python(code, {"PPCACHE_OPS_CACHE": str(tmp_path / "cache"), "CXX": "/nonexistent/bin/c++"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "eager"
    assert result.stderr.count("OpsBuildWarning") == 1 and "no C++ compiler found" in result.stderr


def test_a_failing_compiler_warns_once_and_falls_back(tmp_path):
    code = """
import ppcache  # noqa: F401  (quiet Paddle first)
import paddle
from ppcache import ops
x = paddle.ones([2, 3, 4])
print(float(ops.rel_l1(x, 2 * x).max()), float(ops.rel_l1(x, 3 * x).max()), ops.backend())
"""
    result = run_python(code, {"PPCACHE_OPS_CACHE": str(tmp_path / "cache"), "CXX": "/bin/false"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0.5", str(float(np.float32(2 / 3))), "eager"]
    assert result.stderr.count("OpsBuildWarning") == 1 and "compiler log" in result.stderr
    assert (tmp_path / "cache" / "last-failed-build.log").exists()


@pytest.mark.long("two processes compile the fused ops from nothing at once: the race only exists on a cold build")
def test_concurrent_first_builds_share_one_quiet_cached_build(fused, tmp_path):
    """Two processes build into an empty cache at once: both get the fused ops, print nothing, and leave one
    complete cache entry; a third process loads it without compiling."""
    cache = tmp_path / "cache"
    code = """
import ppcache  # noqa: F401  (quiet Paddle first)
import os, time, paddle
from ppcache import ops
from ppcache.ops import build
start = time.time()
assert ops.backend() == "fused", build.error()
x = paddle.ones([2, 3, 4])
assert abs(float(ops.rel_l1(x, 2 * x).max()) - 0.5) < 1e-7
open(os.environ["ELAPSED_FILE"], "w").write(str(time.time() - start))
"""
    procs = []
    for i in range(3):
        env = dict(os.environ, PPCACHE_OPS_CACHE=str(cache), ELAPSED_FILE=str(tmp_path / f"t{i}"))
        env.pop("PPCACHE_OPS", None)
        procs.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        if i == 1:  # the first two race; the third starts after they finish
            for proc in procs:
                out, err = proc.communicate(timeout=900)
                assert proc.returncode == 0, err
                assert out == "" and err == "", (out, err)  # the compiler's output goes to build.log only
    out, err = procs[2].communicate(timeout=300)
    assert procs[2].returncode == 0 and out == "" and err == "", err
    entries = [p.name for p in cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and (cache / entries[0] / "ok").exists(), entries
    assert (cache / entries[0] / "build.log").stat().st_size > 0
    assert float((tmp_path / "t2").read_text()) < 2.0  # loaded from the cache, not rebuilt


def test_old_builds_are_pruned(tmp_path):
    root = tmp_path / "cache"
    for name, age_days in (("ppcache_ops-old", 40), ("ppcache_ops-recent", 3), ("ppcache_ops-abc.tmp-x", 2),
                           ("ppcache_ops-current", 90), ("unrelated", 90)):
        (root / name).mkdir(parents=True)
        (root / name / "ok").touch()
        stamp = __import__("time").time() - age_days * 86400
        os.utime(root / name / "ok", (stamp, stamp))
        os.utime(root / name, (stamp, stamp))
    (root / "ppcache_ops-old.lock").touch()
    build._prune(str(root), keep="ppcache_ops-current")
    assert sorted(p.name for p in root.iterdir()) == ["ppcache_ops-current", "ppcache_ops-recent", "unrelated"]


def test_import_does_not_build(tmp_path):
    result = run_python("import ppcache, ppcache.ops, ppcache.predictors, ppcache.policies; "
                        "print(ppcache.ops.build._state['loaded'])",
                        {"PPCACHE_OPS_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0 and result.stdout.strip() == "None" and result.stderr == ""
    assert not (tmp_path / "cache").exists()
