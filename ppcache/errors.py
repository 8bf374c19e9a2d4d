"""User-facing errors: one line that names the problem and the fix."""


class PPCacheError(Exception):
    """Base class for errors caused by user input (config, paths, checkpoints, models)."""


class ConfigError(PPCacheError, ValueError):
    """A YAML/config key, type or value is wrong."""


class CheckpointError(PPCacheError, OSError):
    """A checkpoint directory or file is missing or malformed."""


class UnsupportedModelError(PPCacheError, TypeError):
    """A model family ppcache does not know how to cache."""
