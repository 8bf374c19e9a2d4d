"""One rank of the sequence-parallel checks (tests/test_sequence_parallel.py launches two over gloo).

Each rank runs tiny-flux's transformer and pipeline with and without sequence parallelism in the same process
(without it, the rank computes exactly what one process does) and writes rank<R>.json to OUT: the transformer's
max |delta|, and per config the cached image's max |delta| and SSIM to the single-process cached image, the
decision log, the compute fraction and the cache bytes per rank.

    python -m paddle.distributed.launch --nproc_per_node 2 tests/distributed/sequence_parallel_worker.py OUT \
        STEPS CONFIG...

STEPS given as `fail:R` instead: rank R raises in its third transformer call, the others are mid-generation.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore", category=UserWarning)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import ppcache  # noqa: E402
from ppcache.api import engine_of  # noqa: E402
from ppcache.config import RunSection, load_config, resolve_model_path  # noqa: E402
from ppcache.bench.metrics import ssim  # noqa: E402
from ppcache.parallel import disable_sequence_parallel, enable_sequence_parallel  # noqa: E402
from ppcache.pipelines.loading import load_pipeline  # noqa: E402
from ppcache.pipelines.run import generate  # noqa: E402


def decisions(pipe):
    return [[c.step, c.branch, c.computed, c.predicted, c.components_predicted, c.fallback]
            for c in engine_of(pipe).stats.calls]


def transformer_parity(pipe, group):
    transformer = pipe.transformer
    rng = np.random.default_rng(0)
    tokens, text = 256, 8
    inputs = dict(hidden_states=paddle.to_tensor(rng.standard_normal([2, tokens, transformer.config.in_channels]),
                                                 dtype="float32"),
                  encoder_hidden_states=paddle.to_tensor(
                      rng.standard_normal([2, text, transformer.config.joint_attention_dim]), dtype="float32"),
                  pooled_projections=paddle.to_tensor(
                      rng.standard_normal([2, transformer.config.pooled_projection_dim]), dtype="float32"),
                  timestep=paddle.to_tensor([0.7, 0.3]), img_ids=paddle.to_tensor(
                      np.stack(np.meshgrid(np.zeros(1), np.arange(16), np.arange(16), indexing="ij"), -1)
                      .reshape(-1, 3), dtype="float32"),
                  txt_ids=paddle.zeros([text, 3]), return_dict=False)
    with paddle.no_grad():
        disable_sequence_parallel(pipe)
        single = transformer(**inputs)[0].numpy()
        enable_sequence_parallel(pipe, group.size)
        parallel = transformer(**inputs)[0].numpy()
    return float(np.abs(single - parallel).max())


def fail_on_third_call(pipe, rank):
    forward, calls = pipe.transformer.forward, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError(f"rank {rank} failed on purpose in its third transformer call")
        return forward(*args, **kwargs)
    pipe.transformer.forward = failing


def main():
    out, steps, configs = sys.argv[1], sys.argv[2], sys.argv[3:]
    paddle.base.core.set_num_threads(1)
    pipe = load_pipeline(resolve_model_path("tiny-flux"))
    group = enable_sequence_parallel(pipe, 2)
    if steps.startswith("fail:"):
        if group.rank == int(steps.split(":")[1]):
            fail_on_third_call(pipe, group.rank)
        generate(pipe, RunSection(steps=8))
        return
    result = {"rank": group.rank, "transformer_max_abs_diff": transformer_parity(pipe, group), "configs": {}}
    run = RunSection(steps=int(steps), prompt="a photo of a cat", seed=3)
    uncached, _ = generate(pipe, run)
    for path in configs:
        cache = load_config(path).cache
        disable_sequence_parallel(pipe)
        ppcache.apply_cache(pipe, cache)
        single, _ = generate(pipe, run)
        single_log = decisions(pipe)
        enable_sequence_parallel(pipe, 2)
        parallel, _ = generate(pipe, run)
        stats, parallel_log = ppcache.summary(pipe), decisions(pipe)
        ppcache.remove_cache(pipe)
        a, b = np.asarray(single, dtype=np.float32), np.asarray(parallel, dtype=np.float32)
        result["configs"][os.path.basename(path)] = {
            "max_abs_diff": float(np.abs(a - b).max()), "ssim": float(ssim(parallel, single)),
            "decisions": parallel_log, "single_decisions": single_log, "compute_fraction": stats["compute_fraction"],
            "sequence_parallel": stats.get("sequence_parallel"), "gathers": group.gathers, "reduces": group.reduces}
    restored, _ = generate(pipe, run)
    result["restored_max_abs_diff"] = float(np.abs(np.asarray(restored, dtype=np.float32)
                                                   - np.asarray(uncached, dtype=np.float32)).max())
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"rank{group.rank}.json"), "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
