"""ppcache in the PaddleMIX user's own environment: PPDiffusers from the PaddleMIX source tree first on the import
path, its own FluxPipeline / StableDiffusion3Pipeline classes cached through ppcache.

Every test runs in a subprocess with PYTHONPATH=<the tree>:<this checkout> (tests/source_tree.py); without
PPCACHE_PPDIFFUSERS_SRC these tests are skipped, and the skip reason names it.
"""
import os
import re

import numpy as np
import pytest

from source_tree import DRIVERS, ROOT, SOURCE, needs_source_tree, run, run_json

pytestmark = needs_source_tree


def flux_configs():
    """Every shipped cache config (the no-cache baseline excluded)."""
    from ppcache.bench.baselines import shipped_configs

    return sorted(shipped_configs().values())


def test_ppcache_imports_over_the_source_tree():
    code = ("import os, ppcache, ppcache.pipelines, ppdiffusers, json; from ppcache.models.sd3_compat import "
            "missing_config_keys, sd3_transformer_class; print(json.dumps({'file': ppdiffusers.__file__, "
            "'version': ppdiffusers.__version__, 'missing': list(missing_config_keys(sd3_transformer_class())), "
            "'sdpa_math': os.environ.get('FLAGS_sdpa_select_math'), "
            "'flux_pipeline': ppcache.FluxPipeline.__mro__[1].__module__}))")
    out = run_json(["-c", code])
    assert out["file"].startswith(os.path.realpath(SOURCE)) or out["file"].startswith(SOURCE), out
    assert out["missing"] == []  # the source tree implements SD3.5's keys: nothing to add
    assert out["sdpa_math"] == "1"  # CPU-only build: PPDiffusers' math attention, selected by ppcache
    assert out["flux_pipeline"].startswith("ppdiffusers.")  # ppcache.FluxPipeline is PPDiffusers' class here


def test_infer_compare_on_the_ppdiffusers_pipeline(tmp_path):
    out = run(["tools/infer.py", "--config", "configs/sortblock.yaml", "--compare", "--pipeline", "ppdiffusers",
               "--out", str(tmp_path / "sortblock.png")]).stdout
    assert "(ppdiffusers FluxPipeline" in out
    ssim = float(re.search(r"quality vs uncached: SSIM ([0-9.]+)", out).group(1))
    fraction = float(re.search(r"compute fraction: ([0-9.]+)", out).group(1))
    assert 0.3 < fraction < 0.7 and ssim > 0.95, out
    assert os.path.exists(tmp_path / "sortblock.png") and os.path.exists(tmp_path / "sortblock_compare.png")


def test_the_seed_article_code_runs_with_the_import_line_changed():
    out = run_json([os.path.join(DRIVERS, "seed_article.py")])
    assert out["pipeline_mro"][1] == "ppdiffusers.pipelines.flux.pipeline_flux.FluxPipeline"
    assert out["steps"] == 20 and out["blocks_predicted"] > 0 and out["compute_fraction"] < 0.7
    assert out["ssim_cached"] > 0.85
    assert out["restored_bitwise"] and out["blocks_restored"] and out["forward_restored"]


def test_wan_checkpoints_unipc_scheduler_steps_as_diffusers_does():
    # Wan2.1-Diffusers ships UniPCMultistepScheduler (flow prediction, flow sigmas, shift 3); on Paddle 3.3 the
    # tree's own corrector mixes float64 and float32 in one solve and cannot take a step: ppcache's shim (installed
    # only while the tree needs it) makes it step as diffusers does
    out = run_json([os.path.join(DRIVERS, "unipc_parity.py"), "12"])
    assert out["shim_installed"] == out["shim_needed"]
    assert out["steps"] == 12 and out["finite"] and out["dtype"] == "float32"
    assert out["max_abs_diff"] < 1e-4 * out["scale"], out


@pytest.mark.parametrize("model", ["tiny-flux", "tiny-sd3"])
def test_scheduler_looks_the_same_with_the_cache_applied(model):
    out = run_json([os.path.join(DRIVERS, "scheduler_hooks.py"), model])
    assert out["scheduler_class"].startswith("ppdiffusers.")
    assert out["during"] == out["before"] == out["after"]
    assert "sigmas" in out["during"]["set_timesteps"]  # what PPDiffusers' retrieve_timesteps looks for
    assert out["set_timesteps_returns"] == "None"
    assert out["instance_before"] == out["instance_after"] == []


def _check_configs(out, configs):
    assert out["pipeline_modules"]["ppdiffusers"].startswith("ppdiffusers.")
    assert out["uncached_max_abs_diff"] < 1e-3  # same weights, same latents: the same uncached image
    failures = []
    for path in configs:
        row = out["configs"][path]
        ours, theirs = row["ppcache"], row["ppdiffusers"]
        name = os.path.basename(path)
        if theirs["compute_fraction"] > 0.98:
            failures.append(f"{name}: computes everything on PPDiffusers' pipeline")
        if abs(theirs["compute_fraction"] - ours["compute_fraction"]) > 0.02:
            failures.append(f"{name}: compute {theirs['compute_fraction']:.3f} vs {ours['compute_fraction']:.3f}")
        if abs(theirs["ssim"] - ours["ssim"]) > 0.01:
            failures.append(f"{name}: SSIM {theirs['ssim']:.4f} vs {ours['ssim']:.4f}")
        if not row["removal_bitwise"]:
            failures.append(f"{name}: remove_cache does not give the uncached image back")
    assert not failures, "; ".join(failures)


@pytest.mark.long("every shipped config on two FLUX pipelines (PPDiffusers' and ppcache's): the seed article's users "
                   "run these")
def test_every_shipped_flux_config_on_ppdiffusers_flux_pipeline():
    configs = flux_configs()
    out = run_json([os.path.join(DRIVERS, "compare_pipelines.py"), "tiny-flux"] + configs, timeout=1500)
    _check_configs(out, configs)


def one_config_per_method():
    """The shipped configs less their `_fast` / `_quality` variants (the same code with other thresholds)."""
    return [p for p in flux_configs() if not re.search(r"_(fast|quality|balanced)\.yaml$", p)]


@pytest.mark.long("two SD3 pipelines per method, one config per method")
def test_sd3_configs_on_ppdiffusers_sd3_pipeline():
    # Over 30 s (about 90 s): two SD3 pipelines per method. One config per method: this checks PPDiffusers' SD3
    # pipeline classes, not the thresholds (the SSIM regression runs every config). The ECAD schedule files and the
    # MagCache curve are measured on tiny-flux (its block layout, its residuals); every other method runs on SD3.
    configs = [p for p in one_config_per_method() if not os.path.basename(p).startswith(MODEL_SPECIFIC)]
    out = run_json([os.path.join(DRIVERS, "compare_pipelines.py"), "tiny-sd3"] + configs, timeout=1500)
    _check_configs(out, configs)


DIT_FAMILIES = ["pixart", "wan", "hunyuan_video", "cogvideox"]
# Configs made for tiny-flux's own transformer, which another model refuses in one line: the ECAD schedules (its block
# layout) and MagCache (its magnitude curve).
MODEL_SPECIFIC = ("ecad_", "magcache")
REFUSALS = {"ecad_": "this model has", "magcache": "the calibration was measured on"}


@pytest.fixture(scope="module")
def dit_family_runs():
    # One subprocess for the four families (one import of Paddle and the tree): about 100 s on 2 cores
    return run_json([os.path.join(DRIVERS, "dit_families.py"), ",".join(DIT_FAMILIES)] + flux_configs())


@pytest.mark.long("its fixture runs every shipped config on four DiT families of the tree in one subprocess (the first "
                   "parameter pays it)")
@pytest.mark.parametrize("family", DIT_FAMILIES)
def test_every_shipped_config_on_the_source_trees_other_dit_families(family, dit_family_runs):
    # Small random-weight transformers of PPDiffusers' own classes (mechanics only; random weights say nothing of
    # quality). The ECAD schedule files and the MagCache curve were made for tiny-flux and must refuse, in one line.
    configs = flux_configs() + ["MagCache, calibrated on this model"]  # dit_families.CALIBRATED_MAGCACHE
    out = dit_family_runs[family]
    failures = []
    for path in configs:
        row, name = out["configs"][path], os.path.basename(path)
        if name.startswith(MODEL_SPECIFIC):
            refusal = REFUSALS[next(prefix for prefix in MODEL_SPECIFIC if name.startswith(prefix))]
            if refusal not in row.get("error", "") or "\n" in row["error"]:
                failures.append(f"{name}: no one-line refusal of a config made for another model: {row}")
            continue
        if "error" in row:
            failures.append(f"{name}: {row['error']}")
            continue
        if row["family"] != family:
            failures.append(f"{name}: cached as family {row['family']}")
        if not row["compute_fraction"] < 0.98:
            failures.append(f"{name}: computes everything (notices: {row['notices']})")
        if not np.isfinite(row["max_abs_diff"]):
            failures.append(f"{name}: not finite")
        for check in ("batch_equal_fresh", "shape_change_equal_fresh", "restored_bitwise"):
            if not row[check]:
                failures.append(f"{name}: {check} fails")
    assert not failures, "; ".join(failures)


@pytest.mark.long("writes PixArt and Wan checkpoints and runs tools/infer.py --compare on each (two Paddle + tree "
                   "imports)")
def test_pixart_and_wan_checkpoints_load_and_cache_through_infer(tmp_path):
    # Diffusers-format PixArtAlphaPipeline / WanPipeline directories (written by the driver) load through ppcache's
    # loader into the tree's own pipeline classes; infer --compare caches them (CFG: one batch-2 call per step on
    # PixArt, two calls on Wan) and writes a PNG, or a GIF for the video.
    from PIL import Image

    run([os.path.join(DRIVERS, "family_pipelines.py"), str(tmp_path)])
    for name, extra, saved in (("tiny-pixart", [], "pixart.png"), ("tiny-wan", ["--frames", "5"], "wan.gif")):
        out = tmp_path / os.path.splitext(saved)[0]
        printed = run([os.path.join(ROOT, "tools", "infer.py"), "--config", os.path.join(ROOT, "configs", "fbcache.yaml"),
                       "--model", str(tmp_path / name), "--steps", "10", "--height", "16", "--width", "16",
                       "--out", f"{out}.png", "--compare", "--repeats", "1"] + extra).stdout
        fraction = float(re.search(r"compute fraction: ([0-9.]+)", printed).group(1))
        assert fraction < 0.9, printed
        assert float(re.search(r"SSIM ([0-9.]+)", printed).group(1)) > 0.5, printed
        with Image.open(tmp_path / saved) as image:
            frames = getattr(image, "n_frames", 1)
            assert image.size == (16, 16) and frames == (5 if saved.endswith(".gif") else 1)
        with Image.open(tmp_path / saved.replace(".", "_compare.")) as image:
            assert image.size == (36, 16) and getattr(image, "n_frames", 1) == frames
        if saved.endswith(".gif"):
            assert "temporal SSIM" in printed and not (tmp_path / "wan.png").exists()
