"""The speed/quality Pareto front: points no other point beats on both speed-up and SSIM."""
import math


def pareto_front(points):
    """Indices of the non-dominated points of [(speedup, ssim)], both maximised, in order of speed-up.

    A point is dominated when another is at least as good on both axes and better on one; points with a NaN
    coordinate are never on the front; of exact duplicates, the first is kept."""
    valid = [(x, y, i) for i, (x, y) in enumerate(points) if not (math.isnan(x) or math.isnan(y))]
    front, best_y = [], -math.inf
    # fastest first; among equal speed-ups the best SSIM first, so the later ones are dominated or duplicates
    for x, y, i in sorted(valid, key=lambda p: (-p[0], -p[1], p[2])):
        if y > best_y:
            front.append(i)
            best_y = y
    return sorted(front, key=lambda i: points[i][0])
