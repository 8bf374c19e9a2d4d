"""Short moving clips of the tiny image set's subjects, for the bundled text-to-video model (tiny-wan).

A photograph's clip is a square window panning across it in a straight line (random direction, 12-40 % of the
window over the clip); a digit's clip is one glyph drifting across the canvas (1-2 pixels a frame). Prompts are
the image set's: the motion is not prompted, so every prompt has a varied, multimodal distribution of videos.
"""
import numpy as np

from . import dataset

FRAMES = 5  # 1 + 2k frames: the tiny Wan VAE halves time (its latent has 3 frames)


def _straight_path(rng, room_y, room_x, speed, frames):
    """(y, x) integer positions, one per frame, along a straight line in a random direction covering `speed`
    pixels per frame, started so that the whole path stays within [0, room_y] x [0, room_x]."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    travel_y, travel_x = np.sin(angle) * speed * (frames - 1), np.cos(angle) * speed * (frames - 1)
    top = rng.uniform(max(0.0, -travel_y), room_y - max(0.0, travel_y))
    left = rng.uniform(max(0.0, -travel_x), room_x - max(0.0, travel_x))
    progress = [k / max(1, frames - 1) for k in range(frames)]
    return [(int(round(top + travel_y * p)), int(round(left + travel_x * p))) for p in progress]


def _photo_clip(photo, rng, frames):
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.32, 0.7))
    speed = side * rng.uniform(0.12, 0.4) / max(1, frames - 1)
    path = _straight_path(rng, h - side, w - side, speed, frames)
    flip = rng.random() < 0.5
    clip = [dataset._resize(photo[y: y + side, x: x + side], dataset.IMAGE_SIZE, dataset.IMAGE_SIZE) for y, x in path]
    return [frame[:, ::-1] for frame in clip] if flip else clip


def _digit_clip(images, targets, digit, rng, frames):
    glyph = dataset._glyph(images, targets, digit, rng)
    paper = rng.uniform(0.8, 1.0, size=3).astype(np.float32)
    ink = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
    path = _straight_path(rng, dataset.FREE_DIGIT_SHIFT, dataset.FREE_DIGIT_SHIFT, rng.uniform(1.0, 2.0), frames)
    return [dataset._on_paper(glyph, y, x, paper, ink) for y, x in path]


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
