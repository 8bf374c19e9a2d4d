"""tools/infer.py: a run writes a valid PNG; bad input exits 2 with one line and writes nothing."""
import importlib.util
import os
import subprocess
import sys

import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFER = os.path.join(ROOT, "tools", "infer.py")


def load_infer():
    spec = importlib.util.spec_from_file_location("ppcache_infer", INFER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_writes_png(tmp_path, bundled_flux):
    out = tmp_path / "img.png"
    result = subprocess.run([sys.executable, INFER, "--config", os.path.join(ROOT, "configs", "baseline.yaml"),
                             "--steps", "4", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    image = Image.open(out)
    image.verify()
    assert Image.open(out).size == (32, 32)
    assert "steps: 4" in result.stdout and "wall time" in result.stdout


def run_main(argv, capsys):
    code = load_infer().main(argv)
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("yaml_text,extra,pattern", [
    ("run:\n  seeed: 1\n", [], "unknown key run.seeed"),
    ("run:\n  steps: 2.5\n", [], "run.steps must be int"),
    ("model:\n  path: /no/such/model\n", [], "model directory not found: /no/such/model"),
    ("", ["--height", "31"], "run.height must be a multiple of 2"),
    ("", ["--model", "/tmp"], "has no model_index.json"),
    ("model:\n  compile: true\ncache:\n  method: pab\n", [], "pab caches parts of blocks"),
    ("model:\n  compile: 1\n", [], "model.compile must be bool"),
])
def test_bad_input_exits_2_without_output(tmp_path, capsys, yaml_text, extra, pattern, bundled_flux):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    out = tmp_path / "never.png"
    code, err = run_main(["--config", str(config), "--out", str(out)] + extra, capsys)
    assert code == 2
    assert err.startswith("error: ") and pattern in err
    assert err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "never.png.partial").exists()


def test_bad_option_type_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        load_infer().main(["--steps", "many"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_bfloat16_on_a_cpu_build_computes_in_float32(tmp_path):
    config = tmp_path / "bf16.yaml"
    config.write_text("model:\n  dtype: bfloat16\n")
    out = tmp_path / "bf16.png"
    result = subprocess.run([sys.executable, INFER, "--config", str(config), "--steps", "2", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: bfloat16 has no CPU kernels") and result.stderr.count("\n") == 1
    assert "float32)" in result.stdout and out.exists()


def test_model_index_without_components_is_one_line(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text('{"_class_name": "FluxPipeline", "vae": ["diffusers", "AutoencoderKL"]}')
    code, err = run_main(["--model", str(model), "--out", str(tmp_path / "never.png")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "does not name the component(s) scheduler, text_encoder, tokenizer, text_encoder_2, tokenizer_2, " \
           "transformer that FluxPipeline needs" in err
    assert not (tmp_path / "never.png").exists()


def test_unknown_pipeline_source_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        load_infer().main(["--pipeline", "diffusers"])
    assert info.value.code == 2 and "--pipeline" in capsys.readouterr().err
