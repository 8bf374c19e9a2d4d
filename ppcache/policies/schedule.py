"""The `schedule` method: run exactly the recomputes a cache schedule lists (ECAD) and reuse or predict the rest.
A 0 bit with nothing cached yet is computed. A run with another step count remaps the schedule by relative
position, with a warning."""
import dataclasses

from ..errors import ConfigError
from .base import MethodConfig
from ..cache_schedule import CacheSchedule, warn_remap
from .component_cache import ComponentPolicy


@dataclasses.dataclass
class ScheduleConfig(MethodConfig):
    """Static schedule.

    Attributes:
        path: schedule file (JSON or YAML) from `CacheSchedule.save` or the ECAD search.
        order: predictor for skipped components: 0 reuses the last output (ECAD), 1-2 Taylor-extrapolate it.
        num_inference_steps / current_timestep_callback: for a transformer driven without a pipeline.
    """

    method: str = "schedule"
    path: str = ""
    order: int = 0

    def validate(self, where="cache"):
        if not self.path:
            raise ConfigError(f"{where}.path must name a schedule file (JSON or YAML)")
        if not 0 <= self.order <= 2:
            raise ConfigError(f"{where}.order must be 0, 1 or 2, got {self.order}")


class SchedulePolicy(ComponentPolicy):
    name = "schedule"

    def __init__(self, config):
        super().__init__(config)
        self.order = config.order
        self.schedule = CacheSchedule.load(config.path)

    def bind(self, engine):
        super().bind(engine)
        self.schedule.check_model([list(self.adapter.components(b)) for b in self.blocks], self.config.path)

    def reset(self):
        self.remap_warned = False

    def begin_call(self, call):
        steps = call.ctx.num_steps
        if steps is not None and steps != self.schedule.num_steps and not getattr(self, "remap_warned", False):
            warn_remap(self.schedule.num_steps, steps)
            self.remap_warned = True

    def reuse(self, index, name, call):
        return not self.schedule.recompute(call.ctx.step, index, name, call.ctx.num_steps)
