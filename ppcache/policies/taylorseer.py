"""TaylorSeer (arXiv 2503.06923): on full steps record every attention and MLP output (before the gate) and
update its divided-difference ladder; on the N-1 steps in between, predict each with its Taylor polynomial in
the step offset. FLUX single blocks track their output projection; their attention and MLP input projection are
not run on predicted steps."""
import dataclasses

from ..errors import ConfigError
from .base import MethodConfig
from .component_cache import ComponentPolicy


@dataclasses.dataclass
class TaylorSeerConfig(MethodConfig):
    """TaylorSeer.

    Attributes:
        interval: N, one full step every N steps after the warm-up (`fresh_threshold`, `cache_interval`).
        max_order: highest derivative kept (1 = linear; 2 = quadratic).
        first_enhance: steps 0..first_enhance-1 are full (`disable_cache_before_step`).
        disable_after_step: steps from this one on are full (-1: none).
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "taylorseer"
    interval: int = 3
    max_order: int = 1
    first_enhance: int = 3
    disable_after_step: int = -1

    def validate(self, where="cache"):
        if self.interval < 1:
            raise ConfigError(f"{where}.interval must be >= 1, got {self.interval}")
        if not 0 <= self.max_order <= 3:
            raise ConfigError(f"{where}.max_order must be between 0 and 3, got {self.max_order}")


class TaylorSeerPolicy(ComponentPolicy):
    name = "taylorseer"

    def __init__(self, config):
        super().__init__(config)
        self.order = config.max_order

    def first_enhance(self):
        return self.config.first_enhance

    def is_full(self, call):
        """Warm-up, then a full step whenever the counter of predicted steps reaches N - 1."""
        config, step = self.config, call.ctx.step
        if step < config.first_enhance or (0 <= config.disable_after_step <= step):
            call.state.set(call.key("counter"), 0)
            return True
        counter = call.state.get(call.key("counter"), 0)
        if counter >= config.interval - 1:
            call.state.set(call.key("counter"), 0)
            return True
        call.state.set(call.key("counter"), counter + 1)
        return False

    def begin_call(self, call):
        call.full = self.is_full(call)

    def reuse(self, index, name, call):
        return not call.full

    def placeholder(self, index, name):
        return name in ("attn", "proj_mlp") and self.adapter.components(self.blocks[index])[-1] == "proj_out"
