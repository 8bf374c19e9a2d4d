"""BlockDance (arXiv 2503.15927): inside a timestep window, the shallow blocks are recomputed only every N steps;
in between, the state cached after the boundary block is restored and only the deeper blocks run."""
import dataclasses

from ..engine import Prediction
from ..errors import ConfigError
from .base import MethodConfig, Policy, check_window, in_window


@dataclasses.dataclass
class BlockDanceConfig(MethodConfig):
    """BlockDance (one boundary, cached as the state after it).

    Attributes:
        timestep_start / timestep_end: reuse window [timestep_end, timestep_start] on the 0..1000 scale.
        boundary_block: last block of the cached prefix, in the unified block list (FLUX: doubles then singles).
        refresh_interval: N, the prefix is recomputed every N steps inside the window (`block_step_N`).
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "blockdance"
    timestep_start: float = 900.0
    timestep_end: float = 100.0
    boundary_block: int = 5
    refresh_interval: int = 2

    def validate(self, where="cache"):
        check_window(where, self.timestep_end, self.timestep_start)
        if self.refresh_interval < 2 or self.boundary_block < 0:
            raise ConfigError(f"{where}: refresh_interval must be >= 2 and boundary_block >= 0")


class BlockDancePolicy(Policy):
    name = "blockdance"

    def bind(self, engine):
        super().bind(engine)
        if self.config.boundary_block >= len(self.blocks) - 1:
            raise ConfigError(f"cache.boundary_block must be below the last block index {len(self.blocks) - 1}")

    def decide(self, index, io, call):
        config, ctx = self.config, call.ctx
        if index != 0 or not in_window(ctx.timestep, config.timestep_end, config.timestep_start):
            return None
        entry = call.state.get(call.key("entry"))
        if entry is None:
            call.state.set(call.key("entry"), ctx.step)
            entry = ctx.step
        cached = call.state.get(call.key("prefix"))
        if cached is None or (ctx.step - entry) % config.refresh_interval == 0:
            return None
        return Prediction(config.boundary_block, lambda streams: cached)

    def after_compute(self, index, io, outputs, call):
        if index == self.config.boundary_block:
            call.state.set(call.key("prefix"), tuple(outputs))
