"""One way from a config to a ready pipeline (ppcache.pipelines.prepare): the model section means the same in every
tool, and tools/benchmark.py now honours model.dtype and model.compile."""
import importlib.util
import json
import os

import paddle
import pytest

import ppcache
from ppcache.compiled import is_compiled
from ppcache.config import config_from_dict
from ppcache.errors import ConfigError
from ppcache.pipelines import model_section, prepare

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blocks(pipe):
    return list(pipe.transformer.transformer_blocks) + list(pipe.transformer.single_transformer_blocks)


def test_prepare_loads_in_the_configs_dtype_and_compiles_its_blocks():
    config = config_from_dict({"model": {"path": "tiny-flux", "compile": True}})
    pipe, group = prepare(config)
    assert group is None and pipe.transformer.dtype == paddle.float32
    assert all(is_compiled(block) for block in blocks(pipe))
    assert pipe._progress_bar_config == {"disable": True}
    eager, _ = prepare(config, compile=False)  # an override of the model section, as a tool's option gives
    assert not any(is_compiled(block) for block in blocks(eager))


def test_prepare_computes_bfloat16_weights_in_float32_on_a_cpu_build():
    with pytest.warns(UserWarning, match="bfloat16 has no CPU kernels"):
        pipe, _ = prepare(model_section("tiny-flux", dtype="bfloat16"))
    assert pipe.transformer.dtype == paddle.float32


def test_prepare_refuses_a_bad_model_section_and_a_sequence_without_the_launcher():
    with pytest.raises(ConfigError, match="model.dtype: 'int8' is not allowed"):
        model_section("tiny-flux", dtype="int8")
    with pytest.raises(ConfigError, match="model.pipeline"):
        prepare(model_section("tiny-flux"), pipeline="torch")
    with pytest.raises(ppcache.PPCacheError, match="parallel.sequence is 2 but this run has 1 process"):
        prepare(config_from_dict({"parallel": {"sequence": 2}}))


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_tool", os.path.join(ROOT, "tools", "benchmark.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_runs_the_compiled_model_its_config_names(tmp_path):
    config = tmp_path / "teacache_compiled.yaml"
    config.write_text((open(os.path.join(ROOT, "configs", "teacache.yaml")).read()
                       .replace("  path: tiny-flux\n", "  path: tiny-flux\n  compile: true\n")))
    out = tmp_path / "out"
    assert load_benchmark().main(["--configs", str(config), "--steps", "10", "--num-prompts", "1", "--repeats", "1",
                                  "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["environment"]["compiled"] is True and data["environment"]["dtype"] == "float32"
    row = next(r for r in data["rows"] if r["name"] == "teacache_compiled")
    assert 0 < row["compute_fraction"] < 1


def test_benchmark_refuses_a_component_level_method_on_compiled_blocks_before_any_work(tmp_path, capsys):
    configs = []
    for name in ("teacache", "taylorseer"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(open(os.path.join(ROOT, "configs", f"{name}.yaml")).read()
                        .replace("  path: tiny-flux\n", "  path: tiny-flux\n  compile: true\n"))
        configs.append(str(path))
    code = load_benchmark().main(["--configs", *configs, "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "taylorseer caches parts of blocks" in err
    assert not (tmp_path / "out").exists()
