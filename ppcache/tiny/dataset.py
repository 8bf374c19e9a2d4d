"""A small labelled image set built from pictures that ship inside PyPI packages (scikit-image, scikit-learn).

Each subject is one photograph (or the scikit-learn handwritten digits); samples are random 32x32 crops at
random scales with horizontal flips, so every prompt has a varied, multimodal image distribution.
"""
import warnings

import numpy as np

IMAGE_SIZE = 32

# subject phrase -> loader name
PHOTO_SUBJECTS = {
    "an astronaut": "astronaut",
    "a cat": "chelsea",
    "a cup of coffee": "coffee",
    "a colour wheel": "colorwheel",
    "a galaxy field": "hubble_deep_field",
    "a stained tissue sample": "immunohistochemistry",
    "a retina": "retina",
    "a rocket": "rocket",
    "a temple": "sklearn_china",
    "a flower": "sklearn_flower",
    "a brick wall": "brick",
    "a cameraman": "camera",
    "a clock": "clock",
    "some coins": "coins",
    "grass": "grass",
    "gravel": "gravel",
    "the moon": "moon",
    "a page of text": "page",
}
DIGIT_SUBJECTS = {f"a handwritten digit {d}": d for d in range(10)}
TEMPLATES = ("a photo of {}", "{}", "a picture of {}")


def subjects():
    return list(PHOTO_SUBJECTS) + list(DIGIT_SUBJECTS)


def prompt_for(subject, template=0):
    if subject in DIGIT_SUBJECTS:
        return subject
    return TEMPLATES[template].format(subject)


def subject_prompts():
    """One prompt per training subject, in subject order (the sample grid and the prompt-following report label
    images by it); the benchmarks' default prompt set, ppcache/assets/prompts/tiny.txt, holds the same prompts."""
    return [prompt_for(s) for s in subjects()]


def _photo(name):
    import skimage.data
    from sklearn.datasets import load_sample_images

    if name.startswith("sklearn_"):
        images = load_sample_images()
        index = [n.split("/")[-1].split(".")[0] for n in images.filenames].index(name[len("sklearn_"):])
        image = images.images[index]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3].astype(np.float32) / 255.0


def _resize(image, height, width):
    from PIL import Image

    pil = Image.fromarray((image * 255).round().astype(np.uint8))
    return np.asarray(pil.resize((width, height), Image.BICUBIC), dtype=np.float32) / 255.0


def _random_crop(image, rng):
    """A crop of 32..96% of the short side, resized to 32x32, maybe flipped."""
    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(0.32, 0.96))
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = _resize(image[top: top + side, left: left + side], IMAGE_SIZE, IMAGE_SIZE)
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def _digit_images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images / 16.0, digits.target


GLYPH_SIZE = 24
FREE_DIGIT_SHIFT = IMAGE_SIZE - GLYPH_SIZE  # the glyph lands anywhere on the canvas
DIGIT_SHIFT = 2  # the bundled models' data: centred, give or take a pixel


def _digit_sample(images, targets, digit, rng, shift=DIGIT_SHIFT):
    """A random instance of the digit, ink-on-paper colours, placed within `shift` pixels of the top-left corner
    (centred, give or take shift // 2, for a shift below the free margin)."""
    glyph = _glyph(images, targets, digit, rng)
    low = (FREE_DIGIT_SHIFT - shift) // 2
    top, left = rng.integers(low, low + shift + 1, size=2)
    paper = rng.uniform(0.8, 1.0, size=3).astype(np.float32)
    ink = rng.uniform(0.0, 0.35, size=3).astype(np.float32)
    return _on_paper(glyph, top, left, paper, ink)


def _glyph(images, targets, digit, rng):
    """A random instance of the digit, GLYPH_SIZE square, ink 1 on paper 0."""
    glyph = images[rng.choice(np.flatnonzero(targets == digit))]
    return _resize(np.repeat(glyph[..., None], 3, axis=2).astype(np.float32), GLYPH_SIZE, GLYPH_SIZE)


def _on_paper(glyph, top, left, paper, ink):
    """The glyph drawn at (top, left) of the canvas in `ink` on `paper` colours."""
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
    canvas[top: top + GLYPH_SIZE, left: left + GLYPH_SIZE] = glyph
    return paper * (1 - canvas) + ink * canvas


def build_dataset(samples_per_subject, seed=0, image_size=IMAGE_SIZE, digit_shift=DIGIT_SHIFT, digit_repeats=1):
    """Returns (images [N, 3, S, S] in [-1, 1], subject index [N]) in a fixed order for a given seed; samples are
    made at 32x32 and resized (antialiased) to `image_size` S. Digits range over `digit_shift` pixels of position
    and have `digit_repeats` times as many samples as a photograph."""
    rng = np.random.default_rng(seed)
    photos = {name: _photo(name) for name in PHOTO_SUBJECTS.values()}
    digit_images, digit_targets = _digit_images()
    images, labels = [], []
    for index, subject in enumerate(subjects()):
        photo = subject in PHOTO_SUBJECTS
        for _ in range(samples_per_subject * (1 if photo else digit_repeats)):
            if photo:
                images.append(_random_crop(photos[PHOTO_SUBJECTS[subject]], rng))
            else:
                images.append(_digit_sample(digit_images, digit_targets, DIGIT_SUBJECTS[subject], rng, digit_shift))
            labels.append(index)
    if image_size != IMAGE_SIZE:
        images = [_resize(np.clip(image, 0.0, 1.0), image_size, image_size) for image in images]
    images = np.stack(images).transpose(0, 3, 1, 2) * 2.0 - 1.0
    return images.astype(np.float32), np.asarray(labels)
