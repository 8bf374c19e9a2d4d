"""Loading fp32 / fp16 / bf16 and sharded safetensors; clear errors for missing or corrupt files."""
import json
import os

import numpy as np
import paddle
import pytest

from conftest import TINY_FLUX
from ppcache.checkpoint import bf16_bits_to_float32, float32_to_bf16_bits, read_safetensors, write_safetensors
from ppcache.errors import CheckpointError
from ppcache.models import FluxTransformer2DModel


def random_model(seed=0):
    paddle.seed(seed)
    model = FluxTransformer2DModel(**TINY_FLUX)
    for param in model.parameters():
        param.set_value(paddle.randn(param.shape) * 0.1)
    return model.eval()


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_bf16_rounding_matches_round_to_nearest_even():
    values = np.array([1.0, 1.00390625, 1.01171875, -3.14159, 65504.0, 1e-20], np.float32)
    bits = float32_to_bf16_bits(values)
    back = bf16_bits_to_float32(bits)
    assert np.all(np.abs(back - values) <= np.abs(values) * 2**-8)
    assert back[1] == 1.0  # tie (exactly halfway) rounds to even
    assert back[2] == 1.015625


@pytest.mark.parametrize("dtype,tolerance", [("float32", 0.0), ("float16", 1e-3), ("bfloat16", 8e-3)])
def test_save_and_load_round_trip(tmp_path, dtype, tolerance):
    model = random_model()
    model.save_pretrained(tmp_path, paddle_dtype=dtype)
    loaded = FluxTransformer2DModel.from_pretrained(tmp_path)
    original, got = weights(model), weights(loaded)
    assert set(original) == set(got)
    for name in original:
        np.testing.assert_allclose(got[name], original[name], atol=tolerance * 0.5, rtol=tolerance)


def test_load_in_reduced_precision_casts_parameters(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path, paddle_dtype="bfloat16")
    loaded = FluxTransformer2DModel.from_pretrained(tmp_path, paddle_dtype="bfloat16")
    assert loaded.transformer_blocks[0].attn.to_q.weight.dtype == paddle.bfloat16
    assert not loaded.training


def test_linear_weights_are_stored_transposed(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path)
    tensors = read_safetensors(os.path.join(tmp_path, "diffusion_pytorch_model.safetensors"))
    paddle_weight = model.x_embedder.weight.numpy()  # [in, out]
    stored, tag = tensors["x_embedder.weight"]
    assert tag == "F32"
    np.testing.assert_array_equal(stored, paddle_weight.T)  # diffusers layout [out, in]


def test_sharded_checkpoint(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path, max_shard_bytes=40_000)
    shards = [f for f in os.listdir(tmp_path) if f.endswith(".safetensors")]
    assert len(shards) > 2
    assert os.path.exists(tmp_path / "diffusion_pytorch_model.safetensors.index.json")
    loaded = FluxTransformer2DModel.from_pretrained(tmp_path)
    for name, value in weights(model).items():
        np.testing.assert_array_equal(weights(loaded)[name], value)


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(CheckpointError, match="model directory not found"):
        FluxTransformer2DModel.from_pretrained(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="missing config.json"):
        FluxTransformer2DModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(TINY_FLUX))
    with pytest.raises(CheckpointError, match="no safetensors weights"):
        FluxTransformer2DModel.from_pretrained(tmp_path)


def test_truncated_file_is_reported(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path)
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt safetensors file .*truncated"):
        FluxTransformer2DModel.from_pretrained(tmp_path)
    path.write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="corrupt safetensors file"):
        FluxTransformer2DModel.from_pretrained(tmp_path)


def test_shard_missing_from_index(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path, max_shard_bytes=40_000)
    first = sorted(f for f in os.listdir(tmp_path) if f.endswith(".safetensors"))[0]
    os.remove(tmp_path / first)
    with pytest.raises(CheckpointError, match="not found"):
        FluxTransformer2DModel.from_pretrained(tmp_path)


def test_config_that_does_not_match_weights(tmp_path):
    random_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_single_layers"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="missing .* tensor"):
        FluxTransformer2DModel.from_pretrained(tmp_path)
    config["num_single_layers"] = 2
    config["attention_head_dim"] = 32
    config["axes_dims_rope"] = [8, 12, 12]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape"):
        FluxTransformer2DModel.from_pretrained(tmp_path)


def test_integer_and_float_tensors_round_trip(tmp_path):
    path = str(tmp_path / "x.safetensors")
    tensors = {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.linspace(0, 1, 5, dtype=np.float32)}
    write_safetensors(path, tensors, dtype="F16")
    back = read_safetensors(path)
    assert back["a"][1] == "I64" and back["b"][1] == "F16"
    np.testing.assert_array_equal(back["a"][0], tensors["a"])
    np.testing.assert_allclose(back["b"][0], tensors["b"], atol=1e-3)



def test_torch_bf16_and_sharded_checkpoints_load(tmp_path):
    """Checkpoints written by diffusers itself (bf16, sharded) load bit-exactly."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    ref = diffusers.FluxTransformer2DModel(**TINY_FLUX).to(torch.bfloat16)
    ref.save_pretrained(tmp_path, max_shard_size="30KB")
    assert os.path.exists(tmp_path / "diffusion_pytorch_model.safetensors.index.json")
    model = FluxTransformer2DModel.from_pretrained(tmp_path)
    expected = ref.x_embedder.weight.detach().float().numpy()
    np.testing.assert_array_equal(model.x_embedder.weight.numpy(), expected.T)
    expected_norm = ref.transformer_blocks[0].attn.norm_q.weight.detach().float().numpy()
    np.testing.assert_array_equal(model.transformer_blocks[0].attn.norm_q.weight.numpy(), expected_norm)
