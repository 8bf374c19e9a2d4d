"""train_tiny --arch wan on a toy budget, then the written WanPipeline directory: loaded by ppcache, sampled at the
recorded frame count, and run by diffusers' WanPipeline (the peers' runner) on the same weights.

    python wan_toy_training.py OUT_DIR    -> one JSON line
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import train_tiny  # noqa: E402

from ppcache.bench.peers import PEER_CONFIGS, peer_rows  # noqa: E402
from ppcache.bench.evaluate import sample  # noqa: E402
from ppcache.pipelines.loading import load_pipeline  # noqa: E402


def main(out):
    train_tiny.main(["--arch", "wan", "--out", out, "--frames", "3", "--samples-per-subject", "1", "--vae-iters", "2",
                     "--iters", "2", "--batch-size", "2", "--self-guidance", "1", "--threads", "1"])
    with open(os.path.join(out, "vae", "config.json")) as handle:
        vae = json.load(handle)
    pipe = load_pipeline(out)
    video = sample(pipe, "a photo of a cat", 0, 4)[0]
    peer = [c for c in PEER_CONFIGS if c.name == "diffusers FirstBlockCache t=0.3"]
    rows = peer_rows(out, [("a photo of a cat", 0)], 4, [video], configs=peer, ppcache_pipe=pipe)
    print(json.dumps(dict(pipeline=type(pipe).__name__, shape=list(video.shape), z_dim=vae["z_dim"],
                          latents_mean=len(vae["latents_mean"]), latents_std=len(vae["latents_std"]),
                          defaults_kept="_use_default_values" not in vae,
                          rows=[{k: v for k, v in row.items() if k != "images"} for row in rows])))


if __name__ == "__main__":
    main(sys.argv[1])
