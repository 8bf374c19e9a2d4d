"""The Pareto front and the row comparisons of the benchmark report, on hand-made points."""
import math

from ppcache.bench.pareto import pareto_front
from ppcache.bench.report import COLUMNS, compare, frontier, frontier_table, normalized

NAN = float("nan")


def test_front_of_a_hand_made_point_set():
    points = [
        (1.0, 0.99),   # 0: slowest, best quality: on the front
        (1.5, 0.97),   # 1: on the front
        (1.4, 0.96),   # 2: dominated by 1
        (2.0, 0.90),   # 3: on the front
        (2.0, 0.85),   # 4: same speed as 3, worse: dominated
        (1.5, 0.97),   # 5: duplicate of 1: only the first is kept
        (3.0, 0.80),   # 6: fastest: on the front
        (NAN, 1.00),   # 7: unmeasured: never on the front
        (0.9, 0.99),   # 8: as good as 0 but slower: dominated
        (2.5, NAN),    # 9
    ]
    assert pareto_front(points) == [0, 1, 3, 6]
    assert pareto_front([]) == []
    assert pareto_front([(1.2, 0.5)]) == [0]


def row(name, method, fraction, ssim, speedup, framework="ppcache", **extra):
    return normalized(dict(name=name, method=method, framework=framework, compute_fraction=fraction, ssim=ssim,
                           speedup=speedup, **extra))


def test_compare_interpolates_fewer_steps_and_marks_the_front():
    rows = compare([
        row("10/20 steps", "fewer-steps", 0.5, 0.90, 1.9),
        row("15/20 steps", "fewer-steps", 0.75, 0.96, 1.3),
        row("good", "sortblock", 0.6, 0.95, 1.6),      # baseline at 0.6: 0.90 + 0.1 / 0.25 * 0.06 = 0.924
        row("bad", "fora", 0.9, 0.97, 1.05),           # baseline at 0.9: 0.96 + 0.15 / 0.25 * 0.04 = 0.984
        row("peer", "DBCache", NAN, 0.93, 1.5, framework="cache-dit"),
        row("parity", "none", 1.0, 1.0, 1.0, framework="diffusers", parity=True),
    ])
    by_name = {r["name"]: r for r in rows}
    assert math.isclose(by_name["good"]["fewer_steps_ssim"], 0.924)
    assert by_name["good"]["beats_fewer_steps"] is True
    assert math.isclose(by_name["bad"]["fewer_steps_ssim"], 0.984)
    assert by_name["bad"]["beats_fewer_steps"] is False
    assert math.isnan(by_name["peer"]["fewer_steps_ssim"]) and by_name["peer"]["beats_fewer_steps"] is None
    assert math.isnan(by_name["10/20 steps"]["fewer_steps_ssim"])
    assert math.isnan(by_name["parity"]["fewer_steps_ssim"]) and by_name["parity"]["beats_fewer_steps"] is None
    on_front = {r["name"] for r in rows if r["pareto"]}
    assert on_front == {"10/20 steps", "15/20 steps", "good", "bad"}  # the parity check is not a method
    assert list(rows[0])[:len(COLUMNS)] == COLUMNS


def test_normalized_drops_images_and_keeps_scalar_extras():
    result = normalized(dict(name="p", framework="diffusers", method="FirstBlockCache", ssim=0.9, speedup=1.2,
                             compute_fraction=NAN, psnr=30.0, images=[[0.0]], seconds_cached=0.5))
    assert "images" not in result and result["seconds_cached"] == 0.5
    assert math.isnan(result["gmacs"])


def test_frontier_of_a_hand_made_point_set():
    rows = [
        row("7/20 steps", "fewer-steps", 0.35, 0.90, 2.8, ssim_min=0.8, psnr=25.0),
        row("10/20 steps", "fewer-steps", 0.50, 0.94, 2.0, ssim_min=0.9, psnr=28.0),
        row("fast", "taylorseer", 0.34, 0.92, 2.7, ssim_min=0.85, psnr=26.0),
        row("mid", "dbcache", 0.49, 0.97, 1.9, ssim_min=0.95, psnr=32.0),
        row("mid-worse", "sortblock", 0.45, 0.96, 2.1, ssim_min=0.94, psnr=31.0),
        row("over", "fbcache", 0.501, 0.99, 1.9, ssim_min=0.98, psnr=35.0),   # just over 0.5: not in that budget
        row("cd 0.3", "DBCache", 0.48, 0.975, 1.8, framework="cache-dit", ssim_min=0.96, psnr=33.0),
        row("cd unmeasured", "DBCache", NAN, 1.0, 1.0, framework="cache-dit"),
        row("parity", "none", 0.30, 1.0, 1.0, framework="diffusers", parity=True),
    ]
    points = frontier(rows, (0.35, 0.5))
    by_budget = {b: [(p["framework"], p["name"], p["leads"]) for p in points if p["budget"] == b] for b in (0.35, 0.5)}
    assert by_budget[0.35] == [("ppcache", "fast", True), ("fewer steps", "7/20 steps", False)]
    assert by_budget[0.5] == [("cache-dit", "cd 0.3", True), ("ppcache", "mid", False),
                              ("fewer steps", "10/20 steps", False)]
    margins = {(p["budget"], p["name"]): p["over_fewer_steps"] for p in points}
    assert math.isclose(margins[(0.35, "fast")], 0.02) and math.isclose(margins[(0.5, "cd 0.3")], 0.035)
    text = frontier_table(points)
    assert "| ≤ 0.50 | cache-dit **(best)** | cd 0.3 | 0.480 | 0.9750 (0.960) | 33.00 | +0.0350 |" in text
    assert frontier([], (0.5,)) == []


def test_video_rows_carry_temporal_ssim_into_the_frontier_table():
    rows = [row("5/20 steps", "fewer-steps", 0.25, 0.80, 3.0, ssim_min=0.7, psnr=20.0, temporal_ssim=0.85),
            row("fast", "teacache", 0.30, 0.95, 2.9, ssim_min=0.9, psnr=30.0, temporal_ssim=0.97)]
    text = frontier_table(frontier(rows, (0.35,)))
    assert "| temporal SSIM |" in text
    assert "| ≤ 0.35 | ppcache **(best)** | fast | 0.300 | 0.9500 (0.900) | 30.00 | 0.9700 | +0.1500 |" in text
    images = [row("fast", "teacache", 0.30, 0.95, 2.9, ssim_min=0.9, psnr=30.0)]
    assert "temporal" not in frontier_table(frontier(images, (0.35,)))  # images: no such column


def test_summary_of_video_records_averages_their_temporal_ssim():
    from ppcache.bench.report import summarize

    record = dict(compute_fraction=0.4, macs=1e9, ssim=0.9, psnr=30.0, cache_bytes=0, steps_computed=8,
                  blocks_computed=10, blocks_predicted=6, fallbacks=0)
    video = summarize("v", "teacache", 20, [dict(record, temporal_ssim=0.8), dict(record, temporal_ssim=0.9)])
    assert math.isclose(video["temporal_ssim"], 0.85)
    assert math.isnan(summarize("i", "teacache", 20, [record])["temporal_ssim"])
