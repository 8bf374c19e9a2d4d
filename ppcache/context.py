"""Explicit per-generation step context: which generation, step, timestep and guidance branch a call belongs to.

Sources, most explicit first:
1. A pipeline attached with `apply_cache(pipe, ...)`: the scheduler's `set_timesteps` opens a generation and
   its `step` closes a denoising step. Calls between two `step`s share the step index; their order is the branch.
2. `with ppcache.generation(transformer, num_steps=T) as gen:` and `gen.step(i, t)` in a hand-written loop.
3. Fallback for a transformer used alone: the host timestep of each call (from `current_timestep_callback`, or
   one read of the timestep tensor). Timesteps fall within a generation, so a call with the same t is another
   branch of the same step, a lower t is the next step and a higher t starts a new generation. This cannot tell
   apart two generations when the second starts below where an aborted first one stopped; use 1 or 2 then.
"""
import dataclasses
from typing import Callable, List, Optional


@dataclasses.dataclass(frozen=True)
class StepContext:
    generation: int
    step: int
    timestep: Optional[float]  # model scale, 0..1000, host-side
    num_steps: Optional[int]
    branch: int

    @property
    def is_first(self):
        return self.step == 0

    @property
    def is_last(self):
        return self.num_steps is not None and self.step >= self.num_steps - 1


class StepTracker:
    def __init__(self, on_new_generation: Callable[[], None], timestep_callback=None, num_steps=None):
        self.on_new_generation = on_new_generation
        self.timestep_callback = timestep_callback
        self.configured_steps = num_steps
        self.generation = 0
        self.step = 0
        self.calls_in_step = 0
        self.num_steps: Optional[int] = None
        self.timesteps: Optional[List[float]] = None
        self.explicit = False
        self.started = False
        self._last_t = None

    # ---- explicit signals --------------------------------------------------------------------------------
    def begin_generation(self, num_steps=None, timesteps=None):
        self.generation += 1
        self.step, self.calls_in_step = 0, 0
        self.timesteps = [float(t) for t in timesteps] if timesteps is not None else None
        self.num_steps = num_steps if num_steps is not None else (len(self.timesteps) if self.timesteps else None)
        self.explicit, self.started = True, True
        self.on_new_generation()

    def set_step(self, step, timestep=None):
        if step != self.step:
            self.step, self.calls_in_step = step, 0
        if timestep is not None:
            self._explicit_t = float(timestep)

    def end_step(self):
        self.step += 1
        self.calls_in_step = 0

    def end_generation(self):
        self.explicit = False
        self._last_t = None

    # ---- per call ----------------------------------------------------------------------------------------
    def _callback_t(self):
        if self.timestep_callback is None:
            return None
        value = self.timestep_callback()
        return None if value is None else float(value.item() if hasattr(value, "item") else value)

    def next_call(self, read_timestep: Callable[[], Optional[float]]) -> StepContext:
        """`read_timestep` returns the call's timestep on the 0..1000 scale (it may sync; only used as fallback)."""
        if self.explicit:
            t = None
            if self.timesteps is not None and self.step < len(self.timesteps):
                t = self.timesteps[self.step]
            elif getattr(self, "_explicit_t", None) is not None:
                t = self._explicit_t
            else:
                t = self._callback_t()
            if t is None:
                t = read_timestep()
        else:
            t = self._callback_t()
            if t is None:
                t = read_timestep()
            if not self.started or self._last_t is None or t > self._last_t + 1e-6:
                self.generation += 1
                self.step, self.calls_in_step = 0, 0
                self.num_steps = self.configured_steps
                self.started = True
                self.on_new_generation()
            elif t < self._last_t - 1e-6:
                self.step += 1
                self.calls_in_step = 0
            self._last_t = t
        context = StepContext(self.generation, self.step, t, self.num_steps or self.configured_steps,
                              self.calls_in_step)
        self.calls_in_step += 1
        return context
