"""YAML validation: every key checked, one-line errors that name the key and the allowed values."""
import pytest

from ppcache.config import RunSection, build_section, config_from_dict, load_config
from ppcache.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_and_overrides(tmp_path):
    config = load_config(write(tmp_path, "run:\n  steps: 8\n"), overrides={"run": {"seed": 3}})
    assert config.run.steps == 8 and config.run.seed == 3
    assert config.model.path == "tiny-flux" and config.cache.method == "none"


def test_shipped_baseline_config_is_valid():
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = load_config(os.path.join(root, "configs", "baseline.yaml"))
    assert config.run.steps == 20 and config.cache.method == "none"


@pytest.mark.parametrize("text,pattern", [
    ("run:\n  stpes: 3\n", r"unknown key run\.stpes; allowed keys: prompt, negative_prompt, seed, steps"),
    ("run:\n  steps: three\n", r"run\.steps must be int, got 'three'"),
    ("run:\n  steps: true\n", r"run\.steps must be int"),
    ("run:\n  guidance_scale: [1]\n", r"run\.guidance_scale must be float"),
    ("run:\n  steps: 0\n", r"run\.steps must be between 1 and 1000"),
    ("run:\n  output: out.jpg\n", r"run\.output must be a \.png \(image\) or \.gif \(video\) path"),
    ("model:\n  dtype: float64\n", r"model\.dtype: 'float64' is not allowed; use one of float32, float16, bfloat16"),
    ("cache:\n  method: magic\n", r"cache\.method: unknown method 'magic'; available: blockdance, dbcache"),
    ("cache:\n  method: none\n  threshold: 1\n", r"unknown key cache\.threshold"),
    ("extra: 1\n", r"unknown section 'extra'"),
    ("run: 5\n", r"run must be a mapping"),
    ("run:\n  steps: [\n", r"not valid YAML \(line"),
])
def test_bad_configs(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/x.yaml")


def test_int_is_accepted_for_float_and_null_for_optional():
    section = build_section(RunSection, {"guidance_scale": 4, "negative_prompt": None}, "run")
    assert section.guidance_scale == 4.0 and isinstance(section.guidance_scale, float)


def test_empty_document_gives_defaults():
    assert config_from_dict(None).run == RunSection()


def test_relative_schedule_path_names_the_file_beside_the_yaml(tmp_path, monkeypatch):
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "s.json").write_text("{}")
    (tmp_path / "run.yaml").write_text("cache:\n  method: schedule\n  path: schedules/s.json\n")
    monkeypatch.chdir("/")
    assert load_config(str(tmp_path / "run.yaml")).cache.path == str(tmp_path / "schedules" / "s.json")
    (tmp_path / "other.yaml").write_text("cache:\n  method: schedule\n  path: missing.json\n")
    assert load_config(str(tmp_path / "other.yaml")).cache.path == "missing.json"  # left as given
