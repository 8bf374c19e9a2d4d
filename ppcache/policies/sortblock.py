"""SortBlock (arXiv 2508.00412): refresh the whole network in a timestep window, rank blocks by how much their
residual direction changed, recompute the least stable fraction beta * P(t), predict the rest to first order.

Refresh "interval" (the paper): per step inside the window, with p = (i - i_entry) mod K, p = 0 is FULL (all
blocks), p = 1 is SELECT and anything else PARTIAL. Refresh "drift" places FULL steps where the trajectory bends:
block 0 runs at every step, and when its residual has drifted from its value at the last FULL step by a rel-L1 of
`refresh_threshold` or more (or K steps have passed), the rest of the step is FULL; otherwise the step is SELECT
(the first after a FULL) or PARTIAL. Skipped blocks add their Taylor-predicted residual. After a SELECT call, each
block's cosine (first C/8 channels of the image stream, per sample, the least similar sample counts) between its
residual at the last FULL step and its residual now (actual if computed, else its plain Taylor extrapolation, which
shows where it is heading whatever gain the prediction uses) ranks the blocks of each group; the
floor(n * rho) + 1 least similar (and ties) are recomputed until the next SELECT. The ranking is read with the next
host transfer (the next step's refresh check, or the end of the SELECT call), so a step reads the host at most
once.
"""
import dataclasses
from typing import List, Optional

import numpy as np
import paddle

from .. import ops
from ..errors import ConfigError
from .base import MethodConfig, Policy, check_window, in_window, polyval

# P(t), fitted for FLUX.1-dev by the SortBlock authors, highest power first.
SORTBLOCK_RATIO_POLY = [5.67621e-14, -1.36659e-10, 1.16246e-7, -3.97725e-5, 0.00361, 0.56088]
REFRESH_MODES = ("interval", "drift")


@dataclasses.dataclass
class SortBlockConfig(MethodConfig):
    """SortBlock. Field names follow PaddleMIX's `SortBlockConfig` where they exist.

    Attributes:
        timestep_start: upper bound of the caching window on the 0..1000 timestep scale (inclusive).
        timestep_end: lower bound of the caching window (inclusive). Outside the window every step is full.
        step_num2: K, one FULL step every K steps inside the window (>= 2); with refresh "drift", at
            most K - 1 steps between FULL steps.
        refresh: "interval" (FULL every K steps, the paper) or "drift" (FULL where block 0's residual has drifted
            from its value at the last FULL step by refresh_threshold or more).
        refresh_threshold: rel-L1 drift of block 0's residual that triggers a FULL step.
        skip_threshold: with refresh "drift", a drift below this predicts every block but block 0 (the ranked
            blocks are recomputed only between skip_threshold and refresh_threshold); 0 never does.
        beta: scales the recompute ratio rho(t) = beta * P(t), clamped to [0, 1]; higher is slower and better.
        prediction_order: 1 = linear prediction of skipped residuals (the paper), 0 = reuse.
        first_enhance: the linear term F1 is formed only from step first_enhance - 1 on.
        ratio_poly: P(t) coefficients, highest power first.
        channel_fraction: the share of leading channels the cosine looks at (1/8 in the paper).
        num_inference_steps: steps per generation when the transformer is driven without a pipeline.
        current_timestep_callback: returns the host timestep (0..1000) of the current call, e.g.
            `lambda: pipe._current_timestep`; used when the transformer is driven without an attached pipeline.
        percentage, step_num: accepted for PaddleMIX compatibility; PaddleMIX never reads them and neither does
            ppcache (a one-time warning says so when they are set).
    """

    method: str = "sortblock"
    timestep_start: float = 900.0
    timestep_end: float = 100.0
    step_num2: int = 5
    refresh: str = "interval"
    refresh_threshold: float = 0.3
    skip_threshold: float = 0.0
    beta: float = 0.3
    prediction_order: int = 1
    first_enhance: int = 3
    ratio_poly: List[float] = dataclasses.field(default_factory=lambda: list(SORTBLOCK_RATIO_POLY))
    channel_fraction: float = 0.125
    percentage: Optional[float] = None
    step_num: Optional[int] = None

    def validate(self, where="cache"):
        check_window(where, self.timestep_end, self.timestep_start)
        if self.step_num2 < 2:
            raise ConfigError(f"{where}.step_num2 must be >= 2 (one FULL step every step_num2 steps), got {self.step_num2}")
        if not 0.0 <= self.beta <= 1.0:
            raise ConfigError(f"{where}.beta must be between 0 and 1, got {self.beta}")
        if self.refresh not in REFRESH_MODES:
            raise ConfigError(f"{where}.refresh: {self.refresh!r} is not allowed; use one of {', '.join(REFRESH_MODES)}")
        if self.refresh_threshold < 0 or self.skip_threshold < 0:
            raise ConfigError(f"{where}: refresh_threshold and skip_threshold must be >= 0, got "
                              f"{self.refresh_threshold} and {self.skip_threshold}")
        if self.prediction_order not in (0, 1):
            raise ConfigError(f"{where}.prediction_order must be 0 (reuse) or 1 (linear), got {self.prediction_order}")
        if not 0.0 < self.channel_fraction <= 1.0:
            raise ConfigError(f"{where}.channel_fraction must be in (0, 1], got {self.channel_fraction}")


FULL, SELECT, PARTIAL, PROBE = "full", "select", "partial", "probe"


def select_blocks(cosine, groups, rho):
    """Blocks to recompute: in each group of n blocks, those whose cosine is <= the j-th smallest,
    j = min(floor(n * rho), n - 1), i.e. the floor(n * rho) + 1 least similar blocks plus ties."""
    mask = set()
    for members in groups:
        scored = sorted((cosine[i], i) for i in members if i in cosine)
        if not scored:
            continue
        j = min(int(np.floor(len(members) * rho)), len(members) - 1, len(scored) - 1)
        cut = scored[j][0]
        mask.update(i for c, i in scored if c <= cut)
    return mask


class SortBlockPolicy(Policy):
    name = "sortblock"
    budget_guard = True

    def __init__(self, config: SortBlockConfig):
        super().__init__(config)
        for field in ("percentage", "step_num"):
            if getattr(config, field) is not None:
                self.notice(f"SortBlockConfig.{field} has no effect (PaddleMIX never reads it either)")

    def bind(self, engine):
        super().bind(engine)
        self.groups = {}
        for index, block in enumerate(self.blocks):
            kind = type(block).__name__
            self.groups.setdefault(kind, []).append(index)

    def phase(self, call):
        """FULL, SELECT or PARTIAL; PROBE when block 0's drift decides it (refresh "drift")."""
        ctx, config = call.ctx, self.config
        if not in_window(ctx.timestep, config.timestep_end, config.timestep_start):
            return FULL
        if config.refresh == "drift":
            since = call.state.get(call.key("since_full"))
            return FULL if since is None or since + 1 >= config.step_num2 else PROBE
        entry = call.state.get(call.key("entry"))
        if entry is None:
            entry = ctx.step
            call.state.set(call.key("entry"), entry)
        offset = (ctx.step - entry) % config.step_num2
        return FULL if offset == 0 else SELECT if offset == 1 else PARTIAL

    def begin_call(self, call):
        if call.force_compute:
            call.phase = FULL
        else:  # over budget (max_compute_fraction): predict every block it can
            call.phase = PARTIAL if call.over_budget else self.phase(call)
        call.cosines = {}
        call.record.indicator = None
        call.drift = None
        call.skip_all = False

    def _resolve_probe(self, call):
        """After block 0 ran: FULL when its residual drifted by refresh_threshold or more."""
        drift = float(call.read(call.drift).max()) if call.drift is not None else float("inf")
        call.record.indicator = drift
        if drift >= self.config.refresh_threshold:
            call.phase = FULL
            self._keep_full(call, 0, call.probe_residual)
        else:
            call.phase = SELECT if call.state.get(call.key("since_full")) == 0 else PARTIAL
            call.skip_all = drift < self.config.skip_threshold

    def decide(self, index, io, call):
        if call.phase == PROBE:
            if index == 0:
                return None
            self._resolve_probe(call)
        mask = () if call.over_budget or call.skip_all else call.state.get(call.key("mask"), ())
        if call.phase == FULL or index in mask or not self.has_residual(call, index):
            return None
        ladder = call.state.get(call.key("block", index, 0))
        if call.phase == SELECT and len(ladder.factors) > 1:  # a block with no derivative yet has no heading
            call.cosines[index] = self._cosine(call, index, ladder.extrapolate(call.position))
        return self.predict_residual(call, index)

    def after_compute(self, index, io, outputs, call):
        config = self.config
        allow_higher = config.prediction_order >= 1 and call.ctx.step >= config.first_enhance - 1
        residual = self.record_residual(call, index, io, outputs, config.prediction_order, allow_higher)[0]
        if call.phase == FULL:
            self._keep_full(call, index, residual)
        elif call.phase == SELECT:
            call.cosines[index] = self._cosine(call, index, residual)
        elif call.phase == PROBE and index == 0:
            anchor = call.state.get(call.key("full", 0))
            call.probe_residual = residual
            call.drift = None if anchor is None else ops.rel_l1(residual[..., :anchor.shape[-1]], anchor)

    def _keep_full(self, call, index, residual):
        """The residual at a FULL step (its leading channels): the reference of the cosines and of the drift."""
        channels = self._channels(residual)
        call.state.set(call.key("full", index), residual[..., :channels].clone())  # not a view: frees the rest

    def _channels(self, tensor):
        return max(1, int(tensor.shape[-1] * self.config.channel_fraction))

    def _cosine(self, call, index, residual):
        reference = call.state.get(call.key("full", index))
        if reference is None:
            return None
        return ops.channel_cosine(reference, residual, reference.shape[-1]).min()

    def end_call(self, call):
        if call.phase == FULL:
            call.state.set(call.key("since_full"), 0)
        elif call.state.get(call.key("since_full")) is not None:
            call.state.set(call.key("since_full"), call.state.get(call.key("since_full")) + 1)
        if call.phase != SELECT:
            return
        rho = min(1.0, max(0.0, self.config.beta * polyval(self.config.ratio_poly, call.ctx.timestep)))
        known = [(i, c) for i, c in call.cosines.items() if c is not None]
        if not known:
            return
        if call.record.indicator is None:
            call.record.indicator = rho
        state, key = call.state, call.key("mask")

        def choose(values):
            cosine = dict(zip((i for i, _ in known), values.tolist()))
            state.set(key, frozenset(select_blocks(cosine, self.groups.values(), rho)))

        call.collect(paddle.stack([c for _, c in known]), choose)  # read with the next host transfer
