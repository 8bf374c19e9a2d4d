"""The tiny models' training data and objective: digit placement and share, and model-guidance training."""
import numpy as np
import paddle

from ppcache.tiny import dataset
from ppcache.tiny.train import self_guidance_weight, train_flow


def _paper_margin_is_flat(images, labels, rows=4):
    """Per digit image: are the top `rows` pixel rows pure paper (one colour)?"""
    digits = images[labels >= len(dataset.PHOTO_SUBJECTS)]
    margin = digits[:, :, :rows, :]
    return np.ptp(margin.reshape(len(digits), 3, -1), axis=2).max(axis=1) < 1e-6


def test_digit_shift_and_repeats():
    spread, spread_labels = dataset.build_dataset(6, seed=0, digit_shift=dataset.FREE_DIGIT_SHIFT)
    centred, labels = dataset.build_dataset(6, seed=0, digit_shift=0, digit_repeats=2)
    counts = np.bincount(labels)
    photos = len(dataset.PHOTO_SUBJECTS)
    assert (counts[:photos] == 6).all() and (counts[photos:] == 12).all()
    assert _paper_margin_is_flat(centred, labels).all()  # centred glyphs leave a 4-pixel margin
    assert not _paper_margin_is_flat(spread, spread_labels).all()  # free placement puts some glyphs at the edge


def test_self_guidance_weight_ramps_to_the_guidance_scale():
    assert self_guidance_weight(1.0, 500, 1000) == 0.0
    assert self_guidance_weight(4.0, 0, 1000) == 0.0
    assert 0 < self_guidance_weight(4.0, 150, 1000) < 0.75
    assert abs(self_guidance_weight(4.0, 300, 1000) - 0.75) < 1e-12
    assert abs(self_guidance_weight(4.0, 999, 1000) - 0.75) < 1e-12


class _PerPromptVelocity(paddle.nn.Layer):
    """A 'model' whose velocity is one learned number per prompt (one-hot pooled features), whatever x is."""

    def __init__(self, prompts):
        super().__init__()
        self.table = paddle.create_parameter([prompts, 1], "float32",
                                             default_initializer=paddle.nn.initializer.Constant(0.0))

    def predict(self, x, sigma, embeds, pooled):
        return paddle.matmul(pooled, self.table).reshape([-1, 1, 1, 1]) + paddle.zeros_like(x)


def _trained_velocities(scale):
    """Two classes, x0 = +1 and -1, plus the empty prompt: E[n - x0 | c] = -x0 and the unconditional mean is 0."""
    latents = np.concatenate([np.ones((50, 1, 2, 2)), -np.ones((50, 1, 2, 2))]).astype(np.float32)
    labels = np.repeat([0, 1], 50)
    one_hot = paddle.eye(3)
    model = _PerPromptVelocity(3)

    def encode(ids):
        rows = paddle.gather(one_hot, paddle.to_tensor(ids))
        return rows.unsqueeze(1), rows

    train_flow(model, model.predict, encode, [[0], [1], [2]], latents, labels, iters=600, batch_size=64, seed=0,
               lr=0.05, drop_prob=0.2, log_every=1000, self_guidance=scale)
    return model.table.numpy().ravel()


def test_self_guidance_bakes_classifier_free_guidance_into_the_conditional_model():
    """At the fixed point v_c = v_u + scale (E[n - x0 | c] - v_u): here -scale * x0 for the prompts, 0 unprompted."""
    plain, guided = _trained_velocities(1.0), _trained_velocities(3.0)
    np.testing.assert_allclose(plain, np.array([-1.0, 1.0, 0.0]), atol=0.2)
    np.testing.assert_allclose(guided, np.array([-3.0, 3.0, 0.0]), atol=0.4)


def test_video_clips_pan_or_drift_their_subject():
    from ppcache.tiny.clips import build_clips

    clips, labels = build_clips(2, seed=0, frames=5)
    assert clips.shape == (2 * len(dataset.subjects()), 3, 5, 32, 32) and clips.dtype == np.float32
    assert clips.min() >= -1.0 and clips.max() <= 1.0
    assert list(labels[::2]) == list(range(len(dataset.subjects())))
    steps = np.abs(np.diff(clips, axis=2)).mean(axis=(1, 3, 4))  # [clip, frame step]
    assert (steps.max(axis=1) > 0.01).all()  # every clip moves
    # a straight pan: frame 0 and frame 4 differ more than consecutive frames do
    ends = np.abs(clips[:, :, 4] - clips[:, :, 0]).mean(axis=(1, 2, 3))
    assert np.median(ends / steps.mean(axis=1)) > 1.5
    np.testing.assert_array_equal(build_clips(2, seed=0, frames=5)[0], clips)  # seeded
