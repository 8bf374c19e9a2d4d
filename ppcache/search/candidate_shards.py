"""Candidate evaluation split over the ranks of `python -m paddle.distributed.launch`.

Every rank runs the same seeded NSGA-II, so every rank asks for the same candidates. Each evaluates its share
(`evaluate_candidates`), writes it to a shared directory, waits for the other ranks' files (ppcache.bench.rank_shards)
and merges them, so all ranks go on with the same objectives and the same records. Files are named by a hash of
the candidate matrix: a resumed search that asks for the same candidates reads them back instead of mixing in
results from another generation.
"""
import hashlib
import json
import os

import numpy as np

from ..bench.rank_shards import wait_for
from .nsga import evaluate_candidates, objectives_from_shards


def _shard_path(directory, X, rank):
    digest = hashlib.sha1(np.ascontiguousarray(np.asarray(X, dtype=np.int8)).tobytes()).hexdigest()[:16]
    return os.path.join(directory, f"candidates_{digest}_rank{rank}.json")


def sharded_evaluator(objective, directory, rank, world_size, records=None, timeout=None):
    """`evaluate(X) -> F` for NSGASearch. `records` (genome bytes -> dict, e.g. PipelineObjective.records) is
    filled with the other ranks' records as well."""
    os.makedirs(directory, exist_ok=True)
    records = {} if records is None else records

    def evaluate(X):
        mine = evaluate_candidates(X, objective, rank, world_size)
        keys = {i: np.asarray(X[i], dtype=np.int8).tobytes() for i in range(len(X))}
        path = _shard_path(directory, X, rank)
        with open(path + ".tmp", "w") as handle:
            json.dump({str(i): {"objectives": list(f), "record": records.get(keys[i])} for i, f in mine.items()},
                      handle)
        os.replace(path + ".tmp", path)  # readers never see a half-written file
        paths = [_shard_path(directory, X, r) for r in range(world_size)]
        wait_for(paths, timeout=timeout)
        shards = []
        for other in paths:
            with open(other) as handle:
                data = json.load(handle)
            shards.append({int(i): tuple(entry["objectives"]) for i, entry in data.items()})
            records.update({keys[int(i)]: entry["record"] for i, entry in data.items() if entry["record"]})
        return objectives_from_shards(shards, len(X))

    return evaluate
