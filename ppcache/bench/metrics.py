"""Image quality against a reference: SSIM and PSNR (scikit-image), on float images in [0, 1], HWC (videos: FHWC)."""
import numpy as np


def to_float_image(image):
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    return np.clip(array.astype(np.float64), 0.0, 1.0)


def ssim(image, reference):
    """SSIM of two images [H, W, 3]; of two videos [F, H, W, 3], the mean of their frames' SSIM."""
    from skimage.metrics import structural_similarity

    a, b = to_float_image(image), to_float_image(reference)
    if a.ndim == 4:
        return float(np.mean([structural_similarity(x, y, channel_axis=-1, data_range=1.0) for x, y in zip(a, b)]))
    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0))


def psnr(image, reference):
    """Peak signal-to-noise ratio in dB; identical images give +inf."""
    a, b = to_float_image(image), to_float_image(reference)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def mean_quality(images, references):
    """(mean SSIM, mean PSNR) over pairs; PSNR of identical pairs is capped at 100 dB for the mean."""
    pairs = list(zip(images, references))
    return (float(np.mean([ssim(a, b) for a, b in pairs])),
            float(np.mean([min(psnr(a, b), 100.0) for a, b in pairs])))


def temporal_ssim(frames, reference_frames):
    """Mean SSIM between the consecutive-frame differences of a video and of its reference: 1.0 when the video
    moves from frame to frame exactly as the reference does (None for a single frame)."""
    def motion(video):
        array = np.stack([to_float_image(frame) for frame in video])
        return (array[1:] - array[:-1] + 1.0) / 2.0  # [-1, 1] -> [0, 1]

    if len(frames) < 2:
        return None
    return float(np.mean([ssim(a, b) for a, b in zip(motion(frames), motion(reference_frames))]))
