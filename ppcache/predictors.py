"""What value a skipped computation gets: reuse (order 0), linear (order 1) or Taylor order k, with a fitted gain.

A `TaylorLadder` keeps divided-difference factors F_0..F_m of one tracked tensor f along a position axis (the step
index, or the sampler's timestep; the policy chooses). At a computed position s with previous computed position
s' (gap d = s - s'): F_0 <- f(s), F_{k+1} <- (F_k(new) - F_k(old)) / d. The prediction at position p is
F_0 + g * sum_{k>=1} F_k * x^k / k! with x = p - s. "Order" is the highest derivative kept.

The gain g in [0, 1] (adaptive ladders) is fitted on the ladder's own record: at every update that follows a
forecast, the change the ladder forecast for this position, c = sum_{k>=1} F_k x^k / k!, is compared with the change
that happened, a = f(s) - F_0, and g = clip(<c, a> / <c, c>, 0, 1): the least-squares scale of the latest forecast
change (measured better than a running fit over the whole generation, whose early, large changes dominate). On
smooth trajectories g stays near 1 (plain Taylor); where the tracked tensor changes direction from step to step,
the extrapolated part shrinks toward reuse, and before the first such comparison g = 0 (reuse). The two products
are device reductions read at the call's host transfer (`collect`); the gain is a host float, so predictions stay
one fused pass. A fixed ladder (gain "fixed") always uses g = 1.

F_0 is the recorded tensor itself (never written). F_1..F_m belong to the ladder: a fused update rewrites them in
place (ops.ladder_update), so they must not be shared; predictions are always new tensors (or F_0 at order 0).
"""
import math

import paddle

from . import ops

GAINS = ("adaptive", "fixed")


class TaylorLadder:
    __slots__ = ("order", "factors", "position", "adaptive", "gain")

    def __init__(self, order, gain="fixed"):
        if order < 0:
            raise ValueError(f"prediction order must be >= 0, got {order}")
        if gain not in GAINS:
            raise ValueError(f"gain must be one of {', '.join(GAINS)}, got {gain!r}")
        self.order = order
        self.factors = []
        self.position = None
        self.adaptive = gain == "adaptive"
        self.gain = 0.0 if self.adaptive else 1.0

    @property
    def ready(self):
        return bool(self.factors)

    def update(self, value, position, allow_higher=True, collect=None):
        """Records f(position). Higher factors are formed only when `allow_higher` and an earlier value exists.
        `collect(values, consume)` reads device values at the next host transfer (needed by adaptive ladders)."""
        if self.adaptive and collect is not None and len(self.factors) > 1 and position != self.position:
            collect(self._forecast_fit(value, position), self._set_gain)
        if self.position is None or not allow_higher or position == self.position:
            self.factors = [value]
        else:
            self.factors = ops.ladder_update(self.factors, value, float(position - self.position), self.order)
        self.position = position

    def _forecast_fit(self, value, position):
        """[<c, a>, <c, c>] on device (fp32): c the forecast change at `position`, a the actual one."""
        x = float(position - self.position)
        inner = [1.0] + [x ** (k - 1) / math.factorial(k) for k in range(2, len(self.factors))]
        forecast = (ops.taylor_eval(self.factors[1:], inner) * x).astype("float32")
        change = value.astype("float32") - self.factors[0].astype("float32")
        return paddle.stack([(forecast * change).sum(), (forecast * forecast).sum()])

    def _set_gain(self, values):
        """values = [<c, a>, <c, c>] of the latest forecast."""
        if values[1] > 0:
            self.gain = min(1.0, max(0.0, float(values[0]) / float(values[1])))

    def coefficients(self, position, gain=None):
        x = float(position - self.position)
        gain = self.gain if gain is None else gain
        return [1.0] + [gain * x**k / math.factorial(k) for k in range(1, len(self.factors))]

    def predict(self, position):
        return ops.taylor_eval(self.factors, self.coefficients(position))

    def extrapolate(self, position):
        """The plain Taylor expansion (gain 1), whatever the fitted gain: where the trajectory is heading."""
        return ops.taylor_eval(self.factors, self.coefficients(position, 1.0))

    def predict_add(self, base, position):
        """base + prediction, in one pass."""
        return ops.taylor_eval_add(base, self.factors, self.coefficients(position))

    def nbytes(self):
        return sum(ops.nbytes(f) for f in self.factors)
