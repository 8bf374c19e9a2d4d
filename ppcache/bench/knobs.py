"""What `tools/tune.py` searches: per candidate, a cache method, its fixed base settings and the one knob tuned
for a compute budget (ppcache.bench.tune).

A knob runs from its `expensive` end (most compute: a low threshold, a short interval) to its `cheap` end.
Thresholds are bisected on a log scale between the two, intervals over the integers between them. `secondary`
settings are each tried at a few values; the main knob is searched once per combination. A method that needs a
calibration of the model (`calibration`, e.g. MagCache's magnitude curve) gets it measured on the tune's first
calibration case, once, and written into every config of the search. Edit CANDIDATES to
change a range or a base setting, or to add a candidate; DEFAULT_CANDIDATES is what a tune runs by default.
"""
import dataclasses
import itertools
from typing import Mapping, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Knob:
    method: str  # the registered cache method (config `cache.method`)
    keys: Tuple[str, ...]  # config keys set together to the knob's value
    expensive: float
    cheap: float
    integer: bool = False
    base: Mapping = dataclasses.field(default_factory=dict)
    secondary: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    calibration: Optional[str] = None  # a kind of ppcache.bench.calibration.CALIBRATIONS, set as `calibration`

    def settings(self):
        """Every combination of the secondary values, as {key: value} ([{}] without secondary settings)."""
        keys = sorted(self.secondary)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.secondary[k] for k in keys))]

    def value(self, value):
        """The knob's value as the config holds it: an int, or a float rounded to 3 significant digits (so that
        a written config holds exactly the value that was measured)."""
        return int(round(value)) if self.integer else float(f"{value:.3g}")

    def cache_section(self, value, setting=None):
        """The `cache:` mapping of one point."""
        return {"method": self.method, **self.base, **(setting or {}), **{key: self.value(value) for key in self.keys}}

    def label(self, value, setting=None):
        """e.g. "rel_l1_thresh=0.6" or "step_num2=3 beta=0.3"."""
        parts = [f"{self.keys[0]}={self.value(value):g}"] + [f"{k}={v:g}" for k, v in sorted((setting or {}).items())]
        return " ".join(parts)


CANDIDATES = {
    # DBCache + Taylor as in configs/dbcache_fast.yaml: F1B0, a cap of 2 cached steps in a row, the last step computed.
    "dbcache": Knob("dbcache", ("residual_diff_threshold",), 0.02, 1.0,
                    base=dict(Fn_compute_blocks=1, Bn_compute_blocks=0, max_warmup_steps=3,
                              max_continuous_cached_steps=2, calibrator_order=1, final_steps=1)),
    # FBCache exactly as diffusers' FirstBlockCache (reuse, no warm-up).
    "fbcache": Knob("dbcache", ("residual_diff_threshold",), 0.02, 1.0,
                    base=dict(Fn_compute_blocks=1, Bn_compute_blocks=0, max_warmup_steps=0, calibrator_order=-1)),
    "firstblock_taylor": Knob("firstblock_taylor", ("threshold",), 0.02, 1.0,
                              base=dict(warmup_steps=3, max_consecutive=2)),
    "teacache": Knob("teacache", ("rel_l1_thresh",), 0.1, 5.0, base=dict(order=1)),
    "teablockcache": Knob("teablockcache", ("block_threshold", "single_block_threshold"), 0.1, 5.0),
    # MagCache on the model's own magnitude curve; K (skips in a row), the residual's extrapolation order and a
    # computed last step vary (its plan is the same for every image, and skipping the last steps costs the most).
    "magcache": Knob("magcache", ("threshold",), 0.01, 1.0, base=dict(retention_ratio=0.2),
                     secondary=dict(max_skip_steps=(2, 4), order=(0, 1), final_steps=(0, 1)), calibration="magcache"),
    "easycache": Knob("easycache", ("threshold",), 0.02, 1.0, base=dict(retention_ratio=0.2),
                      secondary=dict(order=(0, 1))),
    # TaylorSeer as in configs/taylorseer*.yaml; the final steps kept computed place it between intervals.
    "taylorseer": Knob("taylorseer", ("interval",), 2, 10, integer=True, base=dict(first_enhance=3),
                       secondary=dict(final_steps=(1, 2))),
    "fora": Knob("fora", ("interval",), 2, 10, integer=True),
    # SortBlock with drift refreshes (configs/sortblock*.yaml): the refresh threshold sets the compute; steps that
    # drifted less than skip_threshold predict every block but block 0.
    "sortblock": Knob("sortblock", ("refresh_threshold",), 0.1, 1.0,
                      base=dict(refresh="drift", skip_threshold=0.25, step_num2=4, timestep_start=950.0,
                                timestep_end=50.0, final_steps=1)),
}
DEFAULT_CANDIDATES = tuple(CANDIDATES)
