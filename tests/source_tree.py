"""Running a driver with PPDiffusers from source first on the import path: PYTHONPATH=<the tree>:<this checkout>.

The tree's location comes from PPCACHE_PPDIFFUSERS_SRC (CI sets it to ../shared/ppdiffusers-src, and .ci/run fails
when the tree is missing); without the variable the tests that need it are skipped (`needs_source_tree`), and the
skip reason names it.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVERS = os.path.join(ROOT, "tests", "source_env")
SOURCE_VARIABLE = "PPCACHE_PPDIFFUSERS_SRC"
SOURCE = os.environ.get(SOURCE_VARIABLE)

needs_source_tree = pytest.mark.skipif(
    not SOURCE,
    reason=f"{SOURCE_VARIABLE} is not set: point it at a PPDiffusers source tree (../shared/ppdiffusers-src)")


def source_env():
    assert os.path.isdir(os.path.join(SOURCE, "ppdiffusers")), f"{SOURCE_VARIABLE}={SOURCE} has no ppdiffusers package"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SOURCE, ROOT]))
    env.pop("FLAGS_sdpa_select_math", None)  # ppcache must select PPDiffusers' math attention on CPU by itself
    return env


def run(args, timeout=900):
    result = subprocess.run([sys.executable] + args, cwd=ROOT, env=source_env(), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_json(args, timeout=900):
    return json.loads(run(args, timeout).stdout.strip().splitlines()[-1])
