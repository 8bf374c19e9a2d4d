"""T-GATE (arXiv 2404.02747) as ported to FLUX/SD3: these models have no cross-attention, so T-GATE becomes a
schedule of attention-output reuse (image and text) around a gate step that ends the semantics-planning phase.
i < W: compute; i = W: compute and cache; W < i < G - 1: compute every S-th step, reuse otherwise; i = G - 1:
compute; i >= G: compute every F-th step, reuse otherwise (F = 1 reuses nothing after the gate)."""
import dataclasses

from ..errors import ConfigError
from .base import MethodConfig
from .component_cache import ComponentPolicy


@dataclasses.dataclass
class TGateConfig(MethodConfig):
    """T-GATE.

    Attributes:
        gate_step: G, end of the planning phase.
        warm_up: W, steps before W are always computed.
        sp_interval: S, reuse period before the gate.
        fi_interval: F, reuse period after the gate (1: no reuse after the gate).
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "tgate"
    gate_step: int = 10
    warm_up: int = 2
    sp_interval: int = 3
    fi_interval: int = 2

    def validate(self, where="cache"):
        if min(self.sp_interval, self.fi_interval) < 1 or self.warm_up < 0 or self.gate_step <= self.warm_up:
            raise ConfigError(f"{where}: need sp_interval, fi_interval >= 1 and gate_step > warm_up >= 0")


def tgate_computes(step, config):
    """True when attention is computed at `step` under the T-GATE schedule."""
    if step <= config.warm_up or step == config.gate_step - 1:
        return True
    if step < config.gate_step - 1:
        return step % config.sp_interval == 0
    return step % config.fi_interval == 0


class TGatePolicy(ComponentPolicy):
    name = "tgate"

    def tracks(self, index, name):
        return name in self.adapter.attention_components(self.blocks[index])

    def reuse(self, index, name, call):
        return self.tracks(index, name) and not tgate_computes(call.ctx.step, self.config)
