import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import ppcache  # noqa: E402,F401  (quiet Paddle, shims) before anything else imports paddle
from ppcache.config import resolve_model_path  # noqa: E402

TINY_FLUX = dict(patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
                 num_attention_heads=2, joint_attention_dim=24, pooled_projection_dim=20, guidance_embeds=True,
                 axes_dims_rope=[4, 6, 6])


@pytest.fixture(scope="session")
def bundled_flux():
    path = resolve_model_path("tiny-flux")
    assert os.path.exists(os.path.join(path, "model_index.json")), "the bundled tiny-flux model is missing"
    return path


@pytest.fixture
def launch_two(tmp_path):
    """Runs a tool under the real `paddle.distributed.launch` with 2 CPU processes (logs in tmp_path/log) and
    checks that it succeeded."""
    def launch(tool, *args):
        result = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                                 "--log_dir", str(tmp_path / "log"), tool, *args],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return launch


@pytest.fixture(scope="session")
def flux_pipe(bundled_flux):
    from ppcache.pipelines.loading import load_pipeline

    pipe = load_pipeline(bundled_flux)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def sd3_pipe():
    from ppcache.pipelines.loading import load_pipeline

    path = resolve_model_path("tiny-sd3")
    assert os.path.exists(os.path.join(path, "model_index.json")), "the bundled tiny-sd3 model is missing"
    pipe = load_pipeline(path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---- tests over 30 s must say why (pytest.mark.long); the run lists any that do not ---------------------------
LONG_SECONDS = 30.0
_seconds = {}
_marked = set()


def pytest_collection_modifyitems(items):
    for item in items:
        marker = item.get_closest_marker("long")
        if marker is not None and not marker.args:
            raise pytest.UsageError(f"{item.nodeid}: pytest.mark.long needs a reason")


def pytest_runtest_logreport(report):
    # reports carry their markers' names (also from pytest-xdist's workers, where collection happens)
    if "long" in report.keywords:
        _marked.add(report.nodeid)
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    unmarked = sorted((s, n) for n, s in _seconds.items() if s > LONG_SECONDS and n not in _marked)
    if unmarked:
        terminalreporter.write_line(f"tests over {LONG_SECONDS:.0f} s without pytest.mark.long(reason): "
                                    + ", ".join(f"{n} ({s:.0f} s)" for s, n in reversed(unmarked)))
