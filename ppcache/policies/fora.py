"""FORA (arXiv 2407.01425): every N-th step computes all blocks and caches each block's attention and MLP
outputs (before the gate); the other steps reuse them under the current step's gates. TaylorSeer at order 0
with a uniform schedule."""
import dataclasses

from ..errors import ConfigError
from .base import MethodConfig
from .taylorseer import TaylorSeerPolicy


@dataclasses.dataclass
class FORAConfig(MethodConfig):
    """FORA.

    Attributes:
        interval: N, steps with (i - phase) mod N == 0 are full (`cache_threshold` in the reference).
        phase: offset of the full steps.
        force_last_step: also compute the last step (the reference counts down, so its last step is full).
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "fora"
    interval: int = 2
    phase: int = 0
    force_last_step: bool = True

    def validate(self, where="cache"):
        if self.interval < 1 or self.phase < 0:
            raise ConfigError(f"{where}: interval must be >= 1 and phase >= 0")


class FORAPolicy(TaylorSeerPolicy):
    name = "fora"

    def __init__(self, config):
        super(TaylorSeerPolicy, self).__init__(config)
        self.order = 0

    def first_enhance(self):
        return 0

    def is_full(self, call):
        ctx, config = call.ctx, self.config
        return (ctx.step - config.phase) % config.interval == 0 or (config.force_last_step and ctx.is_last)
