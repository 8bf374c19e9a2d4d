"""Taylor ladders against hand-computed cases: uneven spacing (timestep axis), the fitted gain, and the one host
transfer per call that carries the ladders' statistics."""
import numpy as np
import paddle
import pytest

import ppcache
from ppcache.engine import CallState, dispatch, transfer
from ppcache.predictors import TaylorLadder


def t(*values):
    return paddle.to_tensor(np.array(values, np.float32))


def val(tensor):
    return float(tensor.numpy().reshape(-1)[0])


class Collector:
    """Stands in for CallState.collect: reads collected values at once."""

    def __init__(self):
        self.pending = []

    def __call__(self, values, consume):
        self.pending.append((values, consume))

    def flush(self):
        if self.pending:
            dispatch(transfer([v for v, _ in self.pending]), self.pending)


def test_fixed_ladder_on_unevenly_spaced_positions():
    """f(p) = p^2 sampled at timesteps 1000, 900, 700 (uneven gaps 100, 200) and predicted at 600."""
    ladder = TaylorLadder(2)
    for p in (1000.0, 900.0, 700.0):
        ladder.update(t(p * p), p)
    # The ladder's divided differences use the latest gap at every order (TaylorSeer's rule):
    # F1 = (700^2 - 900^2) / -200 = 1600, the old F1 = (900^2 - 1000^2) / -100 = 1900, F2 = (1600 - 1900) / -200.
    np.testing.assert_allclose([val(f) for f in ladder.factors], [490000.0, 1600.0, 1.5], rtol=1e-6)
    # Taylor form in x = p - 700: F0 + F1 x + F2 x^2 / 2
    x = 600.0 - 700.0
    assert val(ladder.predict(600.0)) == pytest.approx(490000 + 1600 * x + 1.5 * x * x / 2, rel=1e-6)
    # In the step index the same samples sit at 0, 1, 3: a different (biased) extrapolation for step 4.
    steps = TaylorLadder(1)
    for step, p in ((0, 1000.0), (1, 900.0), (3, 700.0)):
        steps.update(t(p * p), float(step))
    assert val(steps.predict(4.0)) == pytest.approx(490000 + (490000 - 810000) / 2 * 1, rel=1e-6)


def test_gain_is_the_least_squares_scale_of_the_latest_forecast_change():
    collect = Collector()
    ladder = TaylorLadder(1, gain="adaptive")
    assert ladder.gain == 0.0  # no evidence yet: reuse
    ladder.update(t(0.0, 0.0), 0.0, collect=collect)
    ladder.update(t(2.0, 2.0), 1.0, collect=collect)  # F1 = (2, 2); no forecast existed before this update
    assert collect.pending == []
    assert float(ladder.predict(2.0).numpy()[0]) == 2.0  # gain 0: reuse
    ladder.update(t(3.0, 3.0), 2.0, collect=collect)  # forecast change (2, 2), actual change (1, 1)
    collect.flush()
    assert ladder.gain == pytest.approx(0.5)  # <c,a> / <c,c> = 4 / 8
    np.testing.assert_allclose(ladder.predict(4.0).numpy(), [3.0 + 0.5 * 1.0 * 2, 3.0 + 1.0], rtol=1e-6)
    ladder.update(t(1.0, 5.0), 3.0, collect=collect)  # forecast change (1, 1), actual (-2, 2): <c,a> = 0
    collect.flush()
    assert ladder.gain == 0.0  # orthogonal: nothing of the forecast change happened
    ladder.update(t(1.0, 8.0), 4.0, collect=collect)  # forecast change (-2, 2), actual (0, 3): 6 / 8
    collect.flush()
    assert ladder.gain == pytest.approx(6 / 8)
    ladder.update(t(100.0, -50.0), 5.0, collect=collect)  # reversal: the fit goes negative, clipped to 0
    collect.flush()
    assert ladder.gain == 0.0


def test_gain_stays_one_on_a_straight_trajectory_and_fixed_ladders_ignore_it():
    collect = Collector()
    adaptive, fixed = TaylorLadder(1, gain="adaptive"), TaylorLadder(1)
    for step in range(5):
        for ladder in (adaptive, fixed):
            ladder.update(t(3.0 * step + 1.0), float(step), collect=collect)
        collect.flush()
    assert adaptive.gain == pytest.approx(1.0) and fixed.gain == 1.0
    assert val(adaptive.predict(7.0)) == pytest.approx(22.0) == val(fixed.predict(7.0))


def test_gain_with_a_second_order_forecast():
    """The forecast change of an order-2 ladder is F1 x + F2 x^2 / 2 (here exact for a parabola: gain 1)."""
    collect = Collector()
    ladder = TaylorLadder(2, gain="adaptive")
    for step in range(5):
        ladder.update(t(step * step * 1.0), float(step), collect=collect)
        collect.flush()
    assert ladder.gain == pytest.approx(1.0)
    with pytest.raises(ValueError, match="gain"):
        TaylorLadder(1, gain="sometimes")


def test_collected_values_ride_on_the_decision_read():
    """A call reads once: collected statistics travel with its decision read, or alone at its end."""
    from ppcache.context import StepContext
    from ppcache.stats import CallRecord

    pending, seen = [], []
    ctx = StepContext(1, 3, 500.0, 10, 0)
    call = CallState(ctx, None, CallRecord(3, 0, 500.0), 4, position=3.0, pending=pending)
    call.collect(t(1.0, 2.0), seen.append)
    host = call.read(t(7.0))
    assert host.tolist() == [7.0] and [v.tolist() for v in seen] == [[1.0, 2.0]] and pending == []
    assert call.synced


@pytest.mark.parametrize("axis", ["step", "timestep"])
def test_forecast_axis_positions(flux_pipe, axis):
    from ppcache.bench.evaluate import sample

    config = ppcache.FirstBlockTaylorConfig(forecast_axis=axis)
    engine = ppcache.apply_cache(flux_pipe, config)
    try:
        positions = []
        original = engine._call_state
        def spy(*args):
            call = original(*args)
            positions.append(call.position)
            return call

        engine._call_state = spy
        sample(flux_pipe, "a photo of a cat", 0, 4)
        timesteps = engine.tracker.timesteps
    finally:
        ppcache.remove_cache(flux_pipe)
    assert positions == (list(map(float, range(4))) if axis == "step" else timesteps)
    with pytest.raises(ppcache.ConfigError, match="forecast_axis"):
        ppcache.FirstBlockTaylorConfig(forecast_axis="sigma")
