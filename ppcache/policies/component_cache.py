"""Shared machinery of component-level methods (TaylorSeer, FORA, PAB, T-GATE, ECAD schedules): the outputs of
block components (attention, MLPs, output projections, taken before the adaLN gate) are recorded on computed
steps and reused or Taylor-predicted on the others, while every block's modulation, gates and residual adds
still run on the current input."""
import paddle

from ..predictors import TaylorLadder
from .base import Policy


def _as_tuple(output):
    return output if isinstance(output, tuple) else (output,)


class ComponentPolicy(Policy):
    component_level = True
    order = 0

    def reuse(self, index, name, call):
        """Whether component `name` of block `index` is taken from the cache at this call."""
        raise NotImplementedError

    def placeholder(self, index, name):
        """True for components whose output only feeds a reused component: on reused steps they return zeros
        of the right shape instead of being computed (FLUX single blocks' attention and MLP input projection
        when the output projection is reused)."""
        return False

    def first_enhance(self):
        return 0

    def tracks(self, index, name):
        """Whether the outputs of this component are ever reused (only those are kept)."""
        return True

    def component_decide(self, index, name, call):
        if not self.reuse(index, name, call):
            return None
        entry = call.state.get(call.key("component", index, name))
        if entry is None:  # nothing cached yet: compute
            return None
        kind, items, is_tuple = entry
        position = call.position

        def produce():
            out = []
            for item in items:
                if item is None:
                    out.append(None)
                elif kind == "shape":
                    out.append(paddle.zeros(item[0], dtype=item[1]))
                else:
                    value = item.predict(position)
                    out.append(value.clip(-65504, 65504) if value.dtype == paddle.float16 else value)
            return tuple(out) if is_tuple else out[0]

        return produce

    def after_component(self, index, name, output, call):
        if not self.tracks(index, name):
            return
        key = call.key("component", index, name)
        values = _as_tuple(output)
        is_tuple = isinstance(output, tuple)
        if self.placeholder(index, name):
            shapes = [None if v is None else (list(v.shape), v.dtype) for v in values]
            call.state.set(key, ("shape", shapes, is_tuple))
            return
        entry = call.state.get(key)
        if entry is None or len(entry[1]) != len(values):
            gain = "adaptive" if getattr(self.config, "forecast_gain", False) else "fixed"
            entry = ("ladder", [None if v is None else TaylorLadder(self.order, gain) for v in values], is_tuple)
            call.state.set(key, entry)
        allow_higher = call.ctx.step >= self.first_enhance() - 1
        for ladder, value in zip(entry[1], values):
            if ladder is not None and value is not None:
                ladder.update(value, call.position, allow_higher, call.collect)
