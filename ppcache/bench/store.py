"""The benchmark's files under `--out`: what was already measured, so that reruns resume and ranks merge.

    refs/<digest>.npy                uncached image of (model, prompt, seed, steps, height, width)
    records/<variant>/<case>.json    quality and compute of one variant on one (prompt, seed) case
    records/<variant>/<case>.npy     its image, kept for the contact-sheet cases only
    timing/<variant>-<digest>.json   interleaved uncached / cached wall times
    calibration/<kind>-<digest>.json a method's calibration of the model (MagCache's curve) on one case
    overhead/<variant>-<digest>.json stock / cached times on the FLUX-shaped timing model

Every key hashes what the result depends on (the model files' sizes and modification times included), so a
changed config or a retrained model is measured again instead of being mixed with old results. Files are
written to a temporary name and renamed: an interrupted run never leaves a half-written result.
"""
import hashlib
import json
import os
import re

import numpy as np


def digest(*parts, length=12):
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def model_fingerprint(model_dir):
    """The model directory's path and the size and modification time of every file in it."""
    files = []
    for root, _, names in os.walk(model_dir):
        for name in sorted(names):
            stat = os.stat(os.path.join(root, name))
            files.append((os.path.relpath(os.path.join(root, name), model_dir), stat.st_size, stat.st_mtime_ns))
    return digest(os.path.realpath(model_dir), sorted(files), length=16)


def atomic(path, write):
    """Calls `write(temporary path)`, then renames the file to `path`: readers never see half a file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    write(temporary)
    os.replace(temporary, path)


class Store:
    def __init__(self, out, model_dir, height, width, agree=None, dtype="float32", compiled=False):
        """`agree(flag) -> bool`: under sequence parallelism every rank keeps its own store and must skip the same
        work, so whether a result is on disk is agreed by all ranks (true only when every rank has it). A model run
        in another dtype, or with compiled blocks, keeps results of its own (float32 eager keys are as before)."""
        self.out = out
        extra = ([dtype] if dtype != "float32" else []) + (["compiled"] if compiled else [])
        self.context = (model_fingerprint(model_dir), height, width, *extra)
        self.agree = agree

    def exists(self, path):
        here = os.path.exists(path)
        return here if self.agree is None else self.agree(here)

    def variant_key(self, variant):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", variant.name)
        return f"{name}-{digest(self.context, variant.name, variant.describe(), variant.steps)}"

    def reference(self, prompt, seed, steps):
        return os.path.join(self.out, "refs", f"{digest(self.context, prompt, seed, steps)}.npy")

    def record(self, variant, case, suffix=".json"):
        return os.path.join(self.out, "records", self.variant_key(variant), digest(*case) + suffix)

    def calibration(self, kind, case, steps):
        return os.path.join(self.out, "calibration", f"{kind}-{digest(self.context, case, steps)}.json")

    def timing(self, variant, kind, *settings):
        """kind: "timing" (the bundled model's wall times) or "overhead" (the FLUX-shaped timing model)."""
        return os.path.join(self.out, kind, f"{self.variant_key(variant)}-{digest(*settings, length=8)}.json")


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_json(path, data):
    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
    atomic(path, write)


def write_image(path, image):
    def write(temporary):
        with open(temporary, "wb") as handle:
            np.save(handle, np.asarray(image, np.float32))
    atomic(path, write)


def read_image(path):
    return np.load(path)
