"""ppdiffusers' SD3 transformer, loaded through ppcache from a torch diffusers checkpoint, matches diffusers."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

import paddle  # noqa: E402

import ppcache  # noqa: E402,F401
from ppcache.models.loading import load_module  # noqa: E402
from ppcache.models.sd3_compat import apply, load_sd3_transformer  # noqa: E402

CONFIG = dict(sample_size=8, patch_size=2, in_channels=4, num_layers=3, attention_head_dim=16, num_attention_heads=2,
              joint_attention_dim=24, caption_projection_dim=32, pooled_projection_dim=20, out_channels=4,
              pos_embed_max_size=16)


@pytest.fixture(scope="module")
def torch_sd3(tmp_path_factory):
    torch.manual_seed(0)
    ref = diffusers.SD3Transformer2DModel(**CONFIG).eval()
    with torch.no_grad():  # zero-initialised layers would otherwise hide wiring bugs
        for param in ref.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    directory = tmp_path_factory.mktemp("sd3")
    ref.save_pretrained(directory)
    return ref, str(directory)


@pytest.mark.parametrize("height,width,text_len", [(8, 8, 5), (8, 12, 7)])
def test_sd3_transformer_matches_diffusers(torch_sd3, height, width, text_len):
    ref, directory = torch_sd3
    model = load_module(apply(), directory)  # strict: every tensor used, none missing
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, height, width)).astype("float32")
    text = rng.standard_normal((2, text_len, 24)).astype("float32")
    pooled = rng.standard_normal((2, 20)).astype("float32")
    t = np.array([700.0, 3.5], "float32")
    with torch.no_grad():
        expected = ref(*map(torch.tensor, (x, text, pooled, t))).sample.numpy()
    with paddle.no_grad():
        got = model(*map(paddle.to_tensor, (x, text, pooled, t))).sample.numpy()
    assert got.shape == expected.shape == (2, 4, height, width)
    assert np.abs(got - expected).max() <= 1e-4


def test_sd3_loader_has_no_extra_norm_biases(torch_sd3):
    _, directory = torch_sd3
    model = load_sd3_transformer(directory)
    assert not [name for name in model.state_dict() if name.endswith("norm.bias")]
