"""Short moving clips of the tiny image set's subjects, for the bundled text-to-video model (tiny-wan).

A photograph's clip is a square window panning across it in a straight line (random direction, 12-40 % of the
window over the clip); a digit's clip is one glyph drifting across the canvas (1-2 pixels a frame). Prompts are
the image set's: the motion is not prompted, so every prompt has a varied, multimodal distribution of videos.
"""
import numpy as np

from . import dataset

FRAMES = 5  # 1 + 2k frames: the tiny Wan VAE halves time (its latent has 3 frames)


def _direction(rng):
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return np.sin(angle), np.cos(angle)


def _photo_clip(photo, rng, frames):
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.32, 0.7))
    travel = side * rng.uniform(0.12, 0.4)
    dy, dx = _direction(rng)
    span_y, span_x = abs(dy) * travel, abs(dx) * travel
    top = rng.uniform(span_y if dy < 0 else 0, h - side - (span_y if dy > 0 else 0))
    left = rng.uniform(span_x if dx < 0 else 0, w - side - (span_x if dx > 0 else 0))
    flip = rng.random() < 0.5
    clip = []
    for k in range(frames):
        progress = k / max(1, frames - 1)
        y, x = int(round(top + dy * travel * progress)), int(round(left + dx * travel * progress))
        frame = dataset._resize(photo[y: y + side, x: x + side], dataset.IMAGE_SIZE, dataset.IMAGE_SIZE)
        clip.append(frame[:, ::-1] if flip else frame)
    return clip


def _digit_clip(images, targets, digit, rng, frames):
    choices = np.flatnonzero(targets == digit)
    glyph = images[rng.choice(choices)]
    size = dataset.GLYPH_SIZE
    big = dataset._resize(np.repeat(glyph[..., None], 3, axis=2).astype(np.float32), size, size)
    paper = rng.uniform(0.8, 1.0, size=3).astype(np.float32)
    ink = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
    margin = dataset.FREE_DIGIT_SHIFT
    speed = rng.uniform(1.0, 2.0)
    dy, dx = _direction(rng)
    travel_y, travel_x = dy * speed * (frames - 1), dx * speed * (frames - 1)
    top = rng.uniform(max(0.0, -travel_y), margin - max(0.0, travel_y))
    left = rng.uniform(max(0.0, -travel_x), margin - max(0.0, travel_x))
    clip = []
    for k in range(frames):
        progress = k / max(1, frames - 1)
        y, x = int(round(top + travel_y * progress)), int(round(left + travel_x * progress))
        canvas = np.zeros((dataset.IMAGE_SIZE, dataset.IMAGE_SIZE, 3), np.float32)
        canvas[y: y + size, x: x + size] = big
        clip.append(paper * (1 - canvas) + ink * canvas)
    return clip


def build_clips(samples_per_subject, seed=0, frames=FRAMES):
    """Returns (clips [N, 3, F, 32, 32] in [-1, 1], subject index [N]) in a fixed order for a given seed."""
    rng = np.random.default_rng(seed)
    photos = {name: dataset._photo(name) for name in dataset.PHOTO_SUBJECTS.values()}
    digit_images, digit_targets = dataset._digit_images()
    clips, labels = [], []
    for index, subject in enumerate(dataset.subjects()):
        for _ in range(samples_per_subject):
            if subject in dataset.PHOTO_SUBJECTS:
                clip = _photo_clip(photos[dataset.PHOTO_SUBJECTS[subject]], rng, frames)
            else:
                clip = _digit_clip(digit_images, digit_targets, dataset.DIGIT_SUBJECTS[subject], rng, frames)
            clips.append(np.stack(clip))
            labels.append(index)
    clips = np.stack(clips).transpose(0, 4, 1, 2, 3) * 2.0 - 1.0  # [N, F, H, W, 3] -> [N, 3, F, H, W]
    return clips.astype(np.float32), np.asarray(labels)
