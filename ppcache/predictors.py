"""What value a skipped computation gets: reuse (order 0), linear (order 1) or Taylor order k.

A `TaylorLadder` keeps divided-difference factors F_0..F_m of one tracked tensor f. At a computed step s with
previous computed step s' (gap d = s - s'): F_0 <- f(s), F_{k+1} <- (F_k(new) - F_k(old)) / d. The prediction at
step i is sum_k F_k * x^k / k! with x = i - s. "Order" is the highest derivative kept.

F_0 is the recorded tensor itself (never written). F_1..F_m belong to the ladder: a fused update rewrites them in
place (ops.ladder_update), so they must not be shared; predictions are always new tensors (or F_0 at order 0).
"""
import math

from . import ops


class TaylorLadder:
    __slots__ = ("order", "factors", "step")

    def __init__(self, order):
        if order < 0:
            raise ValueError(f"prediction order must be >= 0, got {order}")
        self.order = order
        self.factors = []
        self.step = None

    @property
    def ready(self):
        return bool(self.factors)

    def update(self, value, step, allow_higher=True):
        """Records f(step). Higher factors are formed only when `allow_higher` and an earlier value exists."""
        if self.step is None or not allow_higher or step == self.step:
            self.factors = [value]
        else:
            self.factors = ops.ladder_update(self.factors, value, float(step - self.step), self.order)
        self.step = step

    def coefficients(self, step):
        x = float(step - self.step)
        return [x**k / math.factorial(k) for k in range(len(self.factors))]

    def predict(self, step):
        return ops.taylor_eval(self.factors, self.coefficients(step))

    def predict_add(self, base, step):
        """base + prediction, in one pass."""
        return ops.taylor_eval_add(base, self.factors, self.coefficients(step))

    def nbytes(self):
        return sum(ops.nbytes(f) for f in self.factors)
