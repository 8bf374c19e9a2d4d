"""The Pareto plot (speed-up vs SSIM, one series per framework and method) and the contact sheet (the uncached
reference beside every variant, for a few prompts). matplotlib with the Agg backend: no display needed."""
import numpy as np

FEWER_STEPS = "fewer-steps"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


SPEED_LABELS = {"speedup": "wall-clock speed-up over the uncached model (x)",
                "compute_speedup": "compute speed-up over the uncached model, 1 / compute fraction (x)"}


def pareto_plot(rows, path, title="", speed="speedup"):
    """rows: result dicts with name, framework, method, `speed` (a key of SPEED_LABELS), ssim and the `pareto`
    flag. Written as PNG whatever the file name."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 6))
    # in step order from the uncached point (1, 1): the line stays a curve however noisy the timings are
    baseline = sorted((r for r in rows if r["method"] == FEWER_STEPS), key=lambda r: -r["compute_fraction"])
    if baseline:
        ax.plot([1.0] + [r[speed] for r in baseline], [1.0] + [r["ssim"] for r in baseline], "k--", marker=".",
                label="fewer steps, no cache", zorder=1)
    series = {}
    for row in rows:
        if row["method"] != FEWER_STEPS:
            series.setdefault(f"{row['framework']}: {row['method']}", []).append(row)
    markers = {"ppcache": "o", "cache-dit": "s", "diffusers": "^"}
    for label, members in sorted(series.items()):
        ax.scatter([r[speed] for r in members], [r["ssim"] for r in members], label=label, zorder=3,
                   marker=markers.get(members[0]["framework"], "D"), s=40)
        for r in members:
            ax.annotate(r["name"], (r[speed], r["ssim"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r[speed])
    if front:
        ax.plot([r[speed] for r in front], [r["ssim"] for r in front], color="red", alpha=0.5, lw=6,
                label="Pareto front", zorder=2)
    ax.set_xlabel(SPEED_LABELS[speed])
    ax.set_ylabel("SSIM against the uncached image")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=130, format="png")
    plt.close(fig)


def still(image):
    """An image as it is; a video [F, H, W, 3] as its frames stacked top to bottom."""
    if image is None:
        return None
    array = np.asarray(image)
    return np.concatenate(list(array), axis=0) if array.ndim == 4 else array


def contact_sheet(references, columns, path, labels=()):
    """references: [image or video] for a few cases; columns: [(title, [image or None per case])]; labels: a line
    per case (its prompt and seed). One row per case (a video's frames top to bottom)."""
    plt = _pyplot()
    titles = ["uncached"] + [title for title, _ in columns]
    images = [[still(image) for image in column] for column in [references] + [images for _, images in columns]]
    cell_height = 0.9 * images[0][0].shape[0] / images[0][0].shape[1]
    fig, axes = plt.subplots(len(references), len(titles), squeeze=False,
                             figsize=(0.9 * len(titles) + 2.0, cell_height * len(references) + 0.8))
    for col, (title, column) in enumerate(zip(titles, images)):
        for row in range(len(references)):
            ax = axes[row][col]
            ax.axis("off")
            if column[row] is not None:
                ax.imshow(np.clip(np.asarray(column[row]), 0, 1), interpolation="nearest")
        axes[0][col].set_title(title, fontsize=5, rotation=60, ha="left", va="bottom")
    for row, label in enumerate(labels):
        axes[row][0].text(-0.08, 0.5, label, fontsize=5, ha="right", va="center", transform=axes[row][0].transAxes)
    fig.subplots_adjust(left=1.8 / (0.9 * len(titles) + 2.0), right=0.99, wspace=0.05, hspace=0.05, top=0.75)
    fig.savefig(path, dpi=150)
    plt.close(fig)

