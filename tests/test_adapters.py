"""Adapters: PPDiffusers-from-source FLUX (single blocks on the concatenated stream), unsupported models."""
import numpy as np
import paddle
import pytest

import ppcache
from conftest import TINY_FLUX
from ppcache.models import FluxTransformer2DModel
from ppcache.models.flux_transformer import FluxSingleTransformerBlock


class ConcatSingleBlock(FluxSingleTransformerBlock):
    """The PPDiffusers develop-branch interface: one [text; image] tensor in, one out."""

    def forward(self, hidden_states, temb, image_rotary_emb=None):
        normed, gate = self.norm(hidden_states, emb=temb)
        mlp = self.act_mlp(self.proj_mlp(normed))
        attn = self.attn(normed, image_rotary_emb=image_rotary_emb)
        return hidden_states + gate.unsqueeze(1) * self.proj_out(paddle.concat([attn, mlp], axis=2))


class ConcatFlux(FluxTransformer2DModel):
    def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids,
                guidance=None, return_dict=False):
        h, e, temb, rope = self.embed(hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids,
                                      txt_ids, guidance)
        for block in self.transformer_blocks:
            e, h = block(hidden_states=h, encoder_hidden_states=e, temb=temb, image_rotary_emb=rope)
        joint = paddle.concat([e, h], axis=1)
        for block in self.single_transformer_blocks:
            joint = block(hidden_states=joint, temb=temb, image_rotary_emb=rope)
        return (self.head(joint[:, e.shape[1]:], temb),)


def build_pair():
    paddle.seed(0)
    config = dict(TINY_FLUX, num_single_layers=4)
    two_stream = FluxTransformer2DModel(**config)
    for param in two_stream.parameters():
        param.set_value(paddle.randn(param.shape) * 0.1)
    concat = ConcatFlux(**config)
    concat.set_state_dict(two_stream.state_dict())
    for index, block in enumerate(list(concat.single_transformer_blocks)):
        replacement = ConcatSingleBlock(block.proj_out.weight.shape[1], 2, 16)
        replacement.set_state_dict(block.state_dict())
        concat.single_transformer_blocks[index] = replacement
    return two_stream.eval(), concat.eval()


def run(model, steps=8):
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.standard_normal((1, 16, 16)).astype("float32"))
    text = paddle.to_tensor(rng.standard_normal((1, 5, 24)).astype("float32"))
    pooled = paddle.to_tensor(rng.standard_normal((1, 20)).astype("float32"))
    ids = paddle.to_tensor(np.stack([np.zeros(16), np.arange(16) // 4, np.arange(16) % 4], -1).astype("float32"))
    outs = []
    with paddle.no_grad():
        for i in range(steps):
            t = 1.0 - i / steps
            out = model(x, text, pooled, paddle.to_tensor([t]), ids, paddle.zeros([5, 3]),
                        paddle.to_tensor([3.5]), return_dict=False)[0]
            x = x - out / steps
            outs.append(out.numpy())
    return np.stack(outs)


def test_concatenated_single_blocks_are_cached():
    two_stream, concat = build_pair()
    np.testing.assert_allclose(run(concat), run(two_stream), atol=1e-5)  # same model, other block interface
    reference = run(concat)
    for config in (ppcache.SortBlockConfig(step_num2=3, timestep_end=0.0, timestep_start=1000.0),
                   ppcache.FirstBlockTaylorConfig(threshold=10.0, warmup_steps=2, num_inference_steps=8),
                   ppcache.TeaBlockCacheConfig(block_threshold=5.0, single_block_threshold=5.0, num_inference_steps=8)):
        ppcache.apply_cache(concat, config)
        cached = run(concat)
        stats = ppcache.summary(concat)
        ppcache.remove_cache(concat)
        assert stats["steps"] == 8 and stats["blocks_predicted"] > 0, config.method
        assert np.isfinite(cached).all()
        assert np.abs(cached - reference).max() > 0
        np.testing.assert_array_equal(run(concat), reference)


def test_unsupported_model_names_supported_families():
    with pytest.raises(ppcache.UnsupportedModelError) as info:
        ppcache.apply_cache(paddle.nn.Sequential(paddle.nn.Linear(2, 2)), ppcache.SortBlockConfig())
    message = str(info.value)
    assert "Sequential" in message and "FLUX" in message and "SD3" in message
