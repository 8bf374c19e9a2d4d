"""YAML run configuration: `model`, `run` and `cache` sections, each validated key by key.

Every error is a one-line `ConfigError` naming the key, what was wrong, and the allowed keys or values.
Cache methods register a dataclass with `register_method`; the `cache` section's `method` picks it.
"""
import dataclasses
import os
import typing
from typing import Any, Dict, List, Optional, Union

from .errors import ConfigError

BUNDLED_MODELS = {"tiny-flux": "tiny-flux", "tiny-sd3": "tiny-sd3", "tiny-pixart": "tiny-pixart",
                  "tiny-wan": "tiny-wan"}  # tiny-wan: WanPipeline, PPDiffusers from source only
DEFAULT_RESOLUTION = 32  # the bundled tiny-flux's training size (pixels); run.height / run.width default
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")


def resolve_model_path(path):
    """A bundled model name (tiny-flux, tiny-sd3, tiny-pixart, tiny-wan) or a directory."""
    if path in BUNDLED_MODELS:
        return os.path.join(ASSETS, BUNDLED_MODELS[path])
    return os.path.expanduser(str(path))


@dataclasses.dataclass
class ModelSection:
    """Which pipeline to load."""

    path: str = "tiny-flux"  # bundled name (tiny-flux, tiny-sd3, tiny-pixart, tiny-wan) or a diffusers pipeline directory
    dtype: str = "float32"  # float32, float16 or bfloat16 (on a CPU-only Paddle build bf16 weights compute in fp32)
    pipeline: str = "ppcache"  # ppcache's pipeline classes, or the installed PPDiffusers' own (ppdiffusers)
    compile: bool = False  # every transformer block under paddle.jit.to_static (ppcache.compiled)

    def validate(self, where):
        _check_choice(f"{where}.dtype", self.dtype, ("float32", "float16", "bfloat16"))
        _check_choice(f"{where}.pipeline", self.pipeline, ("ppcache", "ppdiffusers"))


@dataclasses.dataclass
class RunSection:
    """One generation."""

    prompt: str = "a photo of a cat"
    negative_prompt: Optional[str] = None  # used when true_cfg_scale > 1 (two transformer calls per step)
    seed: int = 0
    steps: int = 20
    height: int = DEFAULT_RESOLUTION
    width: int = DEFAULT_RESOLUTION
    guidance_scale: float = 3.5  # FLUX guidance embedding (guidance-distilled models); SD3 CFG scale
    true_cfg_scale: float = 1.0  # FLUX true classifier-free guidance
    max_sequence_length: Optional[int] = None  # T5 tokens; default: the tokenizer's model_max_length (<= 512)
    frames: Optional[int] = None  # video: frames (default: the checkpoint's recorded count, else the pipeline's)
    output: str = "outputs/image.png"  # .png; a video pipeline writes the same path as .gif

    def validate(self, where):
        _check_range(f"{where}.steps", self.steps, 1, 1000)
        _check_range(f"{where}.height", self.height, 1, 8192)
        _check_range(f"{where}.width", self.width, 1, 8192)
        _check_range(f"{where}.seed", self.seed, 0, 2**63 - 1)
        if self.true_cfg_scale < 1.0:
            raise ConfigError(f"{where}.true_cfg_scale must be >= 1.0 (1.0 turns true CFG off), got {self.true_cfg_scale}")
        if not self.output.lower().endswith((".png", ".gif")):
            raise ConfigError(f"{where}.output must be a .png (image) or .gif (video) path, got {self.output!r}")
        if self.frames is not None:
            _check_range(f"{where}.frames", self.frames, 1, 1000)


@dataclasses.dataclass
class ParallelSection:
    """Several devices: `sequence: N` splits the image tokens across N ranks of
    `python -m paddle.distributed.launch --nproc_per_node N` (ppcache.parallel; FLUX)."""

    sequence: int = 1

    def validate(self, where):
        _check_range(f"{where}.sequence", self.sequence, 1, 1024)


@dataclasses.dataclass
class NoCache:
    """No caching: the stock model."""

    method: str = "none"


CACHE_METHODS: Dict[str, type] = {"none": NoCache}


def register_method(name, config_class):
    CACHE_METHODS[name] = config_class
    return config_class


@dataclasses.dataclass
class PPCacheConfig:
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    run: RunSection = dataclasses.field(default_factory=RunSection)
    cache: Any = dataclasses.field(default_factory=NoCache)
    parallel: ParallelSection = dataclasses.field(default_factory=ParallelSection)


# ---- validation helpers ---------------------------------------------------------------------------------------
def _type_name(tp):
    origin = typing.get_origin(tp)
    if origin is Union:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin in (list, List):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _matches(value, tp):
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is Union:
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, List):
        return isinstance(value, list) and all(_matches(v, typing.get_args(tp)[0]) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _check_choice(key, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not allowed; use one of {', '.join(map(str, allowed))}")


def _check_range(key, value, low, high):
    if not low <= value <= high:
        raise ConfigError(f"{key} must be between {low} and {high}, got {value}")


def build_section(cls, data, where):
    """Instantiates dataclass `cls` from a mapping, rejecting unknown keys and wrong types."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown key {where}.{key}; allowed keys: {', '.join(fields)}")
        if not _matches(value, hints[key]):
            raise ConfigError(f"{where}.{key} must be {_type_name(hints[key])}, got {value!r} ({type(value).__name__})")
    values = {k: (float(v) if hints[k] is float else v) for k, v in data.items()}
    section = cls(**values)
    if hasattr(section, "validate"):
        section.validate(where)
    return section


def build_cache_section(data, where="cache"):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with a `method` key, got {type(data).__name__}")
    method = data.get("method", "none")
    if method not in CACHE_METHODS:
        raise ConfigError(f"{where}.method: unknown method {method!r}; available: {', '.join(sorted(CACHE_METHODS))}")
    return build_section(CACHE_METHODS[method], data, where)


def config_from_dict(data, source="config"):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with model/run/cache sections")
    allowed = ("model", "run", "cache", "parallel")
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{source}: unknown section {key!r}; allowed sections: {', '.join(allowed)}")
    return PPCacheConfig(model=build_section(ModelSection, data.get("model"), "model"),
                         run=build_section(RunSection, data.get("run"), "run"),
                         cache=build_cache_section(data.get("cache")),
                         parallel=build_section(ParallelSection, data.get("parallel"), "parallel"))


def _merge(base, overrides):
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path, what="config file"):
    """The parsed YAML document; a missing file or a syntax error is a one-line ConfigError."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path} is not valid YAML{line}: {getattr(error, 'problem', error)}") from None


def load_config(path, overrides=None):
    """Reads and validates a ppcache YAML file; returns a `PPCacheConfig`.

    `overrides` ({"run": {"steps": 10}, ...}) are merged in before validation (command-line options).
    """
    data = read_yaml(path)
    if overrides and isinstance(data, (dict, type(None))):
        data = _merge(data or {}, overrides)
    try:
        config = config_from_dict(data, source=str(path))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    for key in ("path", "calibration"):  # a schedule file, a MagCache calibration file
        _resolve_beside(config.cache, key, os.path.dirname(os.path.abspath(path)))
    return config


def _resolve_beside(section, key, directory):
    """A relative file path in a config (e.g. a schedule file) names a file beside the YAML when one is there."""
    value = getattr(section, key, None)
    if isinstance(value, str) and value and not os.path.isabs(value):
        beside = os.path.join(directory, value)
        if os.path.exists(beside):
            setattr(section, key, beside)
