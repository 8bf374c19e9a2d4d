"""TeaCache coefficient calibration: record (indicator rel-L1, output rel-L1) pairs over uncached sampling,
fit y ~ poly4(x) in fp64, report R^2 and the compute each threshold would give."""
import numpy as np

from .. import ops
from ..policies.base import Policy
from ..policies.teacache import TeaCachePolicy


class TeaCacheRecorder(Policy):
    """Computes every block; records block 0's modulated-input change (TeaCache's own code path) and the
    change of the last block's output between consecutive steps, per branch."""

    name = "teacache_recorder"

    def __init__(self):
        super().__init__(None)
        self.pairs = []

    def decide(self, index, io, call):
        if index == 0:
            modulated = self.adapter.modulated_input(self.blocks[0], io)
            previous = call.state.get(call.key("m_prev"))
            call.state.set(call.key("m_prev"), modulated)
            call.x = None if previous is None else ops.rel_l1(modulated, previous, per_sample=False)
        return None

    def after_compute(self, index, io, outputs, call):
        if index != len(self.blocks) - 1:
            return
        previous = call.state.get(call.key("out_prev"))
        call.state.set(call.key("out_prev"), outputs[0])
        if previous is not None and call.x is not None:
            y = ops.rel_l1(outputs[0], previous, per_sample=False)
            self.pairs.append((float(call.x), float(y)))


def fit_polynomial(x, y, degree=4):
    """Least squares in fp64; returns (coefficients highest power first, R^2)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    coefficients = np.polyfit(x, y, degree)
    residual = y - np.polyval(coefficients, x)
    total = ((y - y.mean()) ** 2).sum()
    return coefficients.tolist(), float(1 - (residual**2).sum() / total) if total > 0 else 1.0


def simulate_thresholds(traces, coefficients, thresholds):
    """Computed-step fraction per threshold, replaying TeaCache's accumulate rule on recorded indicator traces
    (one list of per-step rel-L1 values per generation; first and last steps are always computed)."""
    result = {}
    for threshold in thresholds:
        computed = total = 0
        for trace in traces:
            accumulated = 0.0
            for step, rel in enumerate(trace):
                total += 1
                if step == 0 or step == len(trace) - 1:
                    computed += 1
                    accumulated = 0.0
                    continue
                accumulated += float(np.polyval(coefficients, rel))
                if accumulated >= threshold:
                    computed += 1
                    accumulated = 0.0
        result[threshold] = computed / total if total else 1.0
    return result


__all__ = ["TeaCacheRecorder", "TeaCachePolicy", "fit_polynomial", "simulate_thresholds"]
