"""PAB, Pyramid Attention Broadcast (arXiv 2408.12588): inside a timestep range, each attention module is computed
only every N-th step and its output broadcast to the steps between. On FLUX and SD3 every attention is joint
self-attention, so one skip range applies."""
import dataclasses

from ..errors import ConfigError
from .base import MethodConfig
from .component_cache import ComponentPolicy


@dataclasses.dataclass
class PABConfig(MethodConfig):
    """PAB.

    Attributes:
        skip_range: N, attention is recomputed when the step index is a multiple of N (2-4 typical).
        timestep_low / timestep_high: broadcasting only for t strictly inside (timestep_low, timestep_high).
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "pab"
    skip_range: int = 2
    timestep_low: float = 100.0
    timestep_high: float = 800.0

    def validate(self, where="cache"):
        if self.skip_range < 1:
            raise ConfigError(f"{where}.skip_range must be >= 1, got {self.skip_range}")
        if self.timestep_low >= self.timestep_high:
            raise ConfigError(f"{where}: timestep_low must be below timestep_high")


class PABPolicy(ComponentPolicy):
    name = "pab"

    def tracks(self, index, name):
        return name in self.adapter.attention_components(self.blocks[index])

    def reuse(self, index, name, call):
        ctx, config = call.ctx, self.config
        if not self.tracks(index, name) or ctx.step == 0 or ctx.timestep is None:
            return False
        inside = config.timestep_low < ctx.timestep < config.timestep_high
        return inside and ctx.step % config.skip_range != 0
