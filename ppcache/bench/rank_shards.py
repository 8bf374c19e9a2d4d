"""Splitting a benchmark over processes: each rank of `python -m paddle.distributed.launch` takes a fixed share
of the work and writes its results as files (ppcache.bench.store); rank 0 waits for every file, then merges.

Only files are shared, so the same code serves one process, several processes on one machine and several
machines with a shared `--out` directory; no collective communication is needed.
"""
import os
import time


def rank_and_world():
    """(rank, number of ranks) from the launcher's environment; (0, 1) in a plain run."""
    return int(os.environ.get("PADDLE_TRAINER_ID", 0)), max(1, int(os.environ.get("PADDLE_TRAINERS_NUM", 1)))


def shard(items, rank, world):
    """Rank `rank`'s share of `items`: every `world`-th item from position `rank`."""
    return list(items)[rank::world]


def wait_for(paths, timeout=None, poll=1.0, report=None):
    """Blocks until every path exists; `report(missing)` is called when waiting starts. Raises TimeoutError."""
    start = time.monotonic()
    missing = [p for p in paths if not os.path.exists(p)]
    if missing and report is not None:
        report(len(missing))
    while missing:
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"{len(missing)} results from other ranks did not arrive in {timeout:.0f} s, "
                               f"e.g. {missing[0]}")
        time.sleep(poll)
        missing = [p for p in missing if not os.path.exists(p)]
