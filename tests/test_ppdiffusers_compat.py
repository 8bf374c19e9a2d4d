"""Compatibility with whichever ppdiffusers is installed: feature detection, the exported pipeline classes, the
scheduler hooks as callers see them, CPU attention, and no silent no-op. (The same behaviour against the real
PPDiffusers source tree: test_ppdiffusers_source.py.)"""
import inspect
import json
import os
import subprocess
import sys

import paddle
import pytest

import ppcache
import ppdiffusers
from ppcache.errors import CheckpointError, UnsupportedModelError
from ppcache.models import sd3_compat
from ppcache.pipelines import components, exports, loading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_class_the_installed_ppdiffusers_lacks_is_one_line():
    with pytest.raises(CheckpointError) as info:
        components.ppdiffusers_class("NoSuchPipeline")
    message = str(info.value)
    assert "has no NoSuchPipeline" in message and "model.pipeline: ppcache" in message and "\n" not in message


def test_the_bundled_video_model_on_pypi_ppdiffusers_says_to_install_the_source_tree():
    # this process has PyPI's ppdiffusers 0.29.0 (no Wan); tiny-wan is a WanPipeline, and ppcache has no pipeline of
    # its own to offer instead
    from ppcache.config import resolve_model_path

    assert not hasattr(ppdiffusers, "WanPipeline")
    with pytest.raises(CheckpointError) as info:
        loading.load_pipeline(resolve_model_path("tiny-wan"))
    message = str(info.value)
    assert "has no WanPipeline" in message and "PaddleMIX source tree" in message
    assert "model.pipeline" not in message and "\n" not in message


class StaticShiftScheduler:
    """A flow-match scheduler without dynamic shifting, like PyPI's ppdiffusers 0.29.0."""

    def __init__(self, num_train_timesteps=1000, shift=1.0):
        self.shift = shift


def test_ppdiffusers_scheduler_refuses_settings_it_would_drop(tmp_path, monkeypatch):
    monkeypatch.setattr(components, "ppdiffusers_class", lambda name: StaticShiftScheduler)
    (tmp_path / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0, "use_dynamic_shifting": True,
         "base_shift": 0.5}))
    with pytest.raises(CheckpointError, match="does not implement base_shift, use_dynamic_shifting"):
        components._ppdiffusers_scheduler("FlowMatchEulerDiscreteScheduler")(str(tmp_path), None)
    (tmp_path / "scheduler_config.json").write_text(json.dumps({"shift": 3.0, "use_dynamic_shifting": False}))
    assert components._ppdiffusers_scheduler("FlowMatchEulerDiscreteScheduler")(str(tmp_path), None).shift == 3.0  # a False setting loses nothing


def test_sd3_keys_are_added_only_where_the_class_lacks_them():
    class Implements:
        def __init__(self, num_layers=2, dual_attention_layers=(), qk_norm=None):
            pass

    class Lacks:
        def __init__(self, num_layers=2):
            pass

    assert sd3_compat.missing_config_keys(Implements) == {}
    sd3_compat.check_config({"dual_attention_layers": [0, 1], "qk_norm": "rms_norm"}, Implements)
    assert set(sd3_compat.missing_config_keys(Lacks)) == {"dual_attention_layers", "qk_norm"}
    sd3_compat.check_config({"dual_attention_layers": [], "qk_norm": None}, Lacks)
    with pytest.raises(UnsupportedModelError, match="qk_norm='rms_norm'"):
        sd3_compat.check_config({"qk_norm": "rms_norm"}, Lacks)
    # The installed class: its signature lists each key once, whichever ppdiffusers this is.
    names = list(inspect.signature(sd3_compat.apply().__init__).parameters)
    assert names.count("dual_attention_layers") == 1 and names.count("qk_norm") == 1


def _sdpa_flag(env):
    code = "import os, ppcache; print(os.environ.get('FLAGS_sdpa_select_math'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_math_attention_is_selected_on_cpu_builds_only(monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "FLAGS_sdpa_select_math"}
    assert not paddle.is_compiled_with_cuda()
    assert _sdpa_flag(env) == "1"
    assert _sdpa_flag(dict(env, FLAGS_sdpa_select_math="0")) == "0"  # the user's choice stands
    from ppcache import _compat

    monkeypatch.delenv("FLAGS_sdpa_select_math", raising=False)
    monkeypatch.setattr(_compat, "is_cpu_only_build", lambda: False)
    _compat.select_math_attention_on_cpu()
    assert "FLAGS_sdpa_select_math" not in os.environ  # a GPU build keeps its own kernel choice


class FakePPDiffusersPipeline:
    calls = []

    @classmethod
    def from_pretrained(cls, path, *args, **kwargs):
        cls.calls.append(kwargs)
        return cls()


def test_exported_pipeline_classes(monkeypatch, bundled_flux, tmp_path):
    assert issubclass(ppcache.StableDiffusion3Pipeline, ppdiffusers.StableDiffusion3Pipeline)
    if not hasattr(ppdiffusers, "FluxPipeline"):  # PyPI's 0.29.0: ppcache's own FluxPipeline
        from ppcache.pipelines.flux import FluxPipeline

        assert ppcache.FluxPipeline is FluxPipeline
    monkeypatch.delattr(ppdiffusers, "FluxPipeline", raising=False)
    from ppcache.pipelines.flux import FluxPipeline

    assert exports.pipeline_export("FluxPipeline") is FluxPipeline
    monkeypatch.setattr(ppdiffusers, "FluxPipeline", FakePPDiffusersPipeline, raising=False)
    exported = exports.pipeline_export("FluxPipeline")
    assert issubclass(exported, FakePPDiffusersPipeline) and exported.__name__ == FakePPDiffusersPipeline.__name__
    exported.from_pretrained(bundled_flux, paddle_dtype="float32")
    exported.from_pretrained(str(tmp_path))  # no diffusers-format weights here: PPDiffusers' own loading
    exported.from_pretrained(bundled_flux, from_diffusers=False)  # the caller's choice stands
    assert FakePPDiffusersPipeline.calls == [{"paddle_dtype": "float32", "from_diffusers": True}, {},
                                             {"from_diffusers": False}]


def test_scheduler_hooks_keep_signatures_and_restore(flux_pipe):
    scheduler = flux_pipe.scheduler
    before = {name: inspect.signature(getattr(scheduler, name)) for name in ("set_timesteps", "step")}
    sentinel = scheduler.step  # an instance attribute the user set before: it must come back
    scheduler.step = sentinel
    try:
        ppcache.apply_cache(flux_pipe, "configs/fbcache.yaml")
        assert {name: inspect.signature(getattr(scheduler, name)) for name in before} == before
        assert scheduler.step is not sentinel
        ppcache.remove_cache(flux_pipe)
        assert scheduler.__dict__["step"] is sentinel and "set_timesteps" not in scheduler.__dict__
    finally:
        scheduler.__dict__.pop("step", None)


def test_a_generation_with_nothing_to_cache_says_so(flux_pipe):
    from ppcache.bench.evaluate import sample

    # FLUX's smallest timestep at 20 steps is 50: a window below it never opens.
    ppcache.apply_cache(flux_pipe, ppcache.SortBlockConfig(timestep_start=10, timestep_end=0))
    try:
        with pytest.warns(UserWarning, match="computed every block without evaluating a cache decision"):
            sample(flux_pipe, "a photo of a cat", 0, 20)
        stats = ppcache.summary(flux_pipe)
    finally:
        ppcache.remove_cache(flux_pipe)
    assert stats["compute_fraction"] == 1.0 and len(stats["notices"]) == 1


def test_install_requirements_leave_a_paddlemix_install_alone():
    """ppdiffusers and paddlenlp have lower bounds only: PaddleMIX's PPDiffusers 0.29.1 from source and a newer
    PaddleNLP satisfy them (pip keeps them), and the tested PyPI versions do too."""
    from importlib import metadata

    from packaging.requirements import Requirement

    requirements = {r.name: r for r in map(Requirement, metadata.requires("ppcache")) if r.marker is None}
    for name, versions in (("ppdiffusers", ("0.29.0", "0.29.1", "0.30.0")), ("paddlenlp", ("2.8.1", "3.0.0b4"))):
        for version in versions:
            assert requirements[name].specifier.contains(version, prereleases=True), (name, version)
    assert "paddlepaddle" not in requirements  # Paddle comes from the user (or the `cpu` extra)
