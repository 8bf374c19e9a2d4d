"""ppcache's Paddle FLUX transformer, loaded through the real loader, matches diffusers' torch FLUX."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

import paddle  # noqa: E402

from conftest import TINY_FLUX  # noqa: E402
from ppcache.models import FluxTransformer2DModel  # noqa: E402

CONFIGS = {
    "guidance": TINY_FLUX,
    "no-guidance-other-rope": dict(TINY_FLUX, guidance_embeds=False, axes_dims_rope=[8, 4, 4], num_layers=1,
                                   num_single_layers=3, in_channels=12, joint_attention_dim=16),
}


def torch_reference(config, seed=0):
    torch.manual_seed(seed)
    ref = diffusers.FluxTransformer2DModel(**config).eval()
    with torch.no_grad():  # zero-initialised layers would otherwise hide wiring bugs
        for param in ref.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return ref


def inputs(config, batch=2, rows=4, cols=5, text_len=7, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.stack([np.zeros(rows * cols), np.arange(rows * cols) // cols, np.arange(rows * cols) % cols], -1)
    return dict(
        hidden_states=rng.standard_normal((batch, rows * cols, config["in_channels"])).astype("float32"),
        encoder_hidden_states=rng.standard_normal((batch, text_len, config["joint_attention_dim"])).astype("float32"),
        pooled_projections=rng.standard_normal((batch, config["pooled_projection_dim"])).astype("float32"),
        timestep=np.array([0.9, 0.25], "float32")[:batch],
        img_ids=ids.astype("float32"),
        txt_ids=np.zeros((text_len, 3), "float32"),
        guidance=np.full((batch,), 3.5, "float32") if config["guidance_embeds"] else None,
    )


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_flux_transformer_matches_diffusers(tmp_path, name):
    config = CONFIGS[name]
    ref = torch_reference(config)
    ref.save_pretrained(tmp_path)
    model = FluxTransformer2DModel.from_pretrained(tmp_path)
    data = inputs(config)
    with torch.no_grad():
        expected = ref(**{k: (torch.tensor(v) if v is not None else None) for k, v in data.items()}).sample.numpy()
    with paddle.no_grad():
        got = model(**{k: (paddle.to_tensor(v) if v is not None else None) for k, v in data.items()}).sample.numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4
    assert np.abs(expected).max() > 0.1  # a real signal was compared


def test_parity_catches_a_wrong_weight(tmp_path):
    """The comparison is sensitive: one perturbed tensor breaks it."""
    config = CONFIGS["guidance"]
    ref = torch_reference(config)
    ref.save_pretrained(tmp_path)
    model = FluxTransformer2DModel.from_pretrained(tmp_path)
    block = model.single_transformer_blocks[1]
    block.proj_mlp.weight.set_value(block.proj_mlp.weight * 1.01)
    data = inputs(config)
    with torch.no_grad():
        expected = ref(**{k: torch.tensor(v) for k, v in data.items()}).sample.numpy()
    with paddle.no_grad():
        got = model(**{k: paddle.to_tensor(v) for k, v in data.items()}).sample.numpy()
    assert np.abs(got - expected).max() > 1e-4
