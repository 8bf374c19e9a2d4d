"""Does a generated image show its prompt's subject? A linear classifier trained on the bundled training set
(scikit-learn logistic regression on 16x16 downsampled pixels) scores generated images against their prompts."""
import numpy as np

from . import dataset


def features(images):
    """[N, S, S, 3] in [0, 1] (or [N, 3, S, S] in [-1, 1]), S = 16 or 32 -> [N, 16*16*3] (2x2 pixels averaged
    at 32)."""
    images = np.asarray(images, dtype=np.float32)
    if images.shape[1] == 3:
        images = images.transpose(0, 2, 3, 1) * 0.5 + 0.5
    n, h, w, c = images.shape
    f = h // 16
    return images.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4)).reshape(n, -1)


class SubjectClassifier:
    """Predicts the subject index (`dataset.subjects()` order) of 16x16 or 32x32 images."""

    def __init__(self, samples_per_subject=120, seed=1):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        images, labels = dataset.build_dataset(samples_per_subject, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # 300 iterations are plenty for a score
            self.model = LogisticRegression(max_iter=300, C=0.5).fit(features(images), labels)

    def predict(self, images):
        return self.model.predict(features(images))

    def accuracy(self, images, subjects):
        names = dataset.subjects()
        return float(np.mean(self.predict(images) == np.array([names.index(s) for s in subjects])))
