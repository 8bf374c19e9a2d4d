"""What a cached run did: per step and branch, the blocks computed and predicted, their cost, fallbacks."""
import dataclasses
import time
from typing import Dict, List, Optional


@dataclasses.dataclass
class CallRecord:
    step: int
    branch: int
    timestep: Optional[float]
    computed: List[int] = dataclasses.field(default_factory=list)
    predicted: List[int] = dataclasses.field(default_factory=list)
    macs_run: int = 0
    macs_full: int = 0
    components_predicted: int = 0
    indicator: Optional[float] = None
    fallback: bool = False
    over_budget: bool = False  # the generation had spent its max_compute_fraction before this call


class RunStats:
    """Records of the current (last) generation plus totals over all generations since apply/reset."""

    def __init__(self, num_blocks):
        self.num_blocks = num_blocks
        self.calls: List[CallRecord] = []
        self.generations = 0
        self.fallbacks = 0
        self.peak_cache_bytes = 0
        self.started = None
        self.wall_seconds = 0.0

    def new_generation(self):
        self.calls = []
        self.generations += 1
        self.fallbacks = 0
        self.peak_cache_bytes = 0
        self.started = time.perf_counter()
        self.wall_seconds = 0.0

    def add(self, record, cache_bytes):
        self.calls.append(record)
        self.fallbacks += int(record.fallback)
        self.peak_cache_bytes = max(self.peak_cache_bytes, cache_bytes)
        if self.started is not None:
            self.wall_seconds = time.perf_counter() - self.started

    def summary(self) -> Dict:
        calls = self.calls
        macs_full = sum(c.macs_full for c in calls)
        macs_run = sum(c.macs_run for c in calls)
        computed = [0] * self.num_blocks
        for call in calls:
            for index in call.computed:
                computed[index] += 1
        steps = sorted({c.step for c in calls})
        full_steps = sorted({c.step for c in calls
                             if len(c.computed) == self.num_blocks and not c.components_predicted})
        return {
            "steps": len(steps),
            "calls": len(calls),
            "full_steps": len(full_steps),
            "blocks_computed": sum(len(c.computed) for c in calls),
            "blocks_predicted": sum(len(c.predicted) for c in calls),
            "components_predicted": sum(c.components_predicted for c in calls),
            "block_hit_ratio": [1.0 - n / len(calls) if calls else 0.0 for n in computed],
            "compute_fraction": macs_run / macs_full if macs_full else 1.0,
            "macs_run": macs_run,
            "macs_full": macs_full,
            "fallbacks": self.fallbacks,
            "budget_forced_steps": sum(1 for c in calls if c.over_budget and (c.predicted or c.components_predicted)),
            "cache_bytes": self.peak_cache_bytes,
            "wall_seconds": self.wall_seconds,
            "per_step": [dataclasses.asdict(c) for c in calls],
        }
