"""SSIM / PSNR of images and videos, and the temporal SSIM of videos."""
import numpy as np

from ppcache.bench.metrics import psnr, ssim, temporal_ssim


def video(seed, frames=4):
    return np.random.default_rng(seed).uniform(0, 1, (frames, 16, 16, 3))


def test_video_ssim_is_the_mean_of_its_frames():
    a, b = video(0), video(1)
    b[0] = a[0]  # one identical frame of four
    per_frame = [ssim(x, y) for x, y in zip(a, b)]
    assert per_frame[0] == 1.0 and max(per_frame[1:]) < 0.2
    assert np.isclose(ssim(a, b), np.mean(per_frame))
    assert ssim(a, a) == 1.0 and psnr(a, a) == float("inf")


def test_temporal_ssim_sees_motion_that_per_frame_ssim_does_not():
    y, x = np.mgrid[0:16, 0:16] / 16.0
    picture = 0.5 + 0.4 * np.sin(2 * np.pi * (x + 0.5 * y))[..., None] * np.ones(3)
    still = np.repeat(picture[None], 4, axis=0)
    moving = still.copy()
    moving[2:] = np.roll(still[2:], 1, axis=2)  # the same smooth picture, one pixel over from the third frame on
    assert temporal_ssim(still, still) == 1.0
    assert temporal_ssim(moving, still) < 0.85 and ssim(moving, still) > 0.9  # measured 0.79, 0.94
    assert temporal_ssim(still[:1], still[:1]) is None
