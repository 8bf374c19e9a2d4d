"""Diffusers/transformers-format checkpoints: safetensors (fp32/fp16/bf16, single or sharded) <-> Paddle layers.

PyTorch `nn.Linear` stores its weight as [out, in]; Paddle's as [in, out]. Every 2-D weight that belongs to a
Paddle `nn.Linear` is transposed on load and on save; everything else is copied as is.
"""
import json
import os
import struct

import numpy as np

from .errors import CheckpointError

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
INDEX_FILES = tuple(name + ".index.json" for name in WEIGHT_FILES)


def bf16_bits_to_float32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16_bits(values):
    """Round to nearest even, as torch does."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def read_safetensors(path):
    """Returns {name: (array, dtype_tag)}; bf16 arrays come back as float32 (exactly representable)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len <= 0 or 8 + header_len > size:
                raise ValueError("header length is out of range")
            header = json.loads(handle.read(header_len))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
        tensors = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            tag = info["dtype"]
            begin, end = info["data_offsets"]
            if tag not in _DTYPES:
                raise ValueError(f"tensor {name!r} has unsupported dtype {tag}")
            if end > data.shape[0] or begin > end:
                raise ValueError(f"tensor {name!r} lies past the end of the file (truncated?)")
            array = np.frombuffer(data[begin:end], dtype=_DTYPES[tag]).reshape(info["shape"])
            if tag == "BF16":
                array = bf16_bits_to_float32(array)
            tensors[name] = (array, tag)
        return tensors
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file not found: {path}") from None
    except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as error:
        raise CheckpointError(f"corrupt safetensors file {path}: {error}; re-download or re-save it") from None


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """tensors: {name: numpy array}; floating arrays are stored as `dtype` (F32, F16 or BF16)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        if np.issubdtype(array.dtype, np.floating):
            if dtype == "BF16":
                raw, tag = float32_to_bf16_bits(array), "BF16"
            else:
                raw, tag = array.astype({"F32": np.float32, "F16": np.float16}[dtype]), dtype
        else:
            tag = {v: k for k, v in _DTYPES.items() if k != "BF16"}[array.dtype.type]
            raw = array
        blob = np.ascontiguousarray(raw).tobytes()
        header[name] = {"dtype": tag, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for blob in blobs:
            handle.write(blob)
    os.replace(tmp, path)


def read_checkpoint_dir(directory):
    """Reads every tensor of a model directory: one weights file, or an index plus its shards."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"model directory not found: {directory}")
    for index_name in INDEX_FILES:
        index_path = os.path.join(directory, index_name)
        if os.path.exists(index_path):
            try:
                with open(index_path) as handle:
                    weight_map = json.load(handle)["weight_map"]
            except (ValueError, KeyError) as error:
                raise CheckpointError(f"corrupt index file {index_path}: {error}") from None
            tensors = {}
            for shard in sorted(set(weight_map.values())):
                tensors.update(read_safetensors(os.path.join(directory, shard)))
            missing = sorted(set(weight_map) - set(tensors))
            if missing:
                raise CheckpointError(f"{index_path} lists tensors that no shard holds, e.g. {missing[0]!r}")
            return tensors
    for name in WEIGHT_FILES:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return read_safetensors(path)
    raise CheckpointError(
        f"no safetensors weights in {directory}: expected one of {', '.join(WEIGHT_FILES + INDEX_FILES)}"
    )


def read_config(directory, name="config.json"):
    path = os.path.join(directory, name)
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise CheckpointError(f"missing {name} in {directory}: is this a diffusers-format model directory?") from None
    except ValueError as error:
        raise CheckpointError(f"corrupt {path}: {error}") from None


def _linear_weight_names(layer):
    import paddle.nn as nn

    return {f"{name}.weight" if name else "weight" for name, sub in layer.named_sublayers(include_self=True)
            if isinstance(sub, nn.Linear)}


def load_state_into(layer, tensors, source="checkpoint", ignore_missing=(), ignore_unexpected=()):
    """Copies `tensors` ({name: (array, tag)} or {name: array}) into `layer`, transposing Linear weights.

    Every parameter and buffer must be present, and every tensor must be used, except names that match a
    prefix/suffix in `ignore_missing` / `ignore_unexpected` (tied or non-persistent weights).
    """
    import paddle

    linear = _linear_weight_names(layer)
    state = layer.state_dict()
    arrays = {k: (v[0] if isinstance(v, tuple) else v) for k, v in tensors.items()}

    def ignored(name, patterns):
        return any(name.startswith(p) or name.endswith(p) for p in patterns)

    missing = [k for k in state if k not in arrays and not ignored(k, ignore_missing)]
    unexpected = [k for k in arrays if k not in state and not ignored(k, ignore_unexpected)]
    if missing:
        raise CheckpointError(
            f"{source} is missing {len(missing)} tensor(s) the model needs, e.g. {missing[0]!r}: "
            "does the config.json match these weights?")
    if unexpected:
        raise CheckpointError(
            f"{source} has {len(unexpected)} tensor(s) the model does not use, e.g. {unexpected[0]!r}: "
            "does the config.json match these weights?")
    for name, target in state.items():
        if name not in arrays:
            continue
        array = arrays[name]
        if name in linear and array.ndim == 2:
            array = array.T
        if list(array.shape) != list(target.shape):
            raise CheckpointError(
                f"{source}: tensor {name!r} has shape {list(array.shape)}, the model expects {list(target.shape)}")
        value = paddle.to_tensor(np.ascontiguousarray(array, dtype=np.float32)
                                 if np.issubdtype(array.dtype, np.floating) else np.ascontiguousarray(array))
        target.set_value(value.cast(target.dtype))


def export_state(layer):
    """The layer's tensors in diffusers layout (Linear weights as [out, in]) as float32/int numpy arrays."""
    import paddle

    linear = _linear_weight_names(layer)
    out = {}
    for name, value in layer.state_dict().items():
        array = value.cast(paddle.float32).numpy() if value.is_floating_point() else value.numpy()
        out[name] = np.ascontiguousarray(array.T) if name in linear and array.ndim == 2 else array
    return out


def save_model_dir(layer, directory, config, dtype="F32", weights_name=WEIGHT_FILES[0], max_shard_bytes=None):
    """Writes config.json and safetensors weights (sharded with an index when over `max_shard_bytes`)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2, sort_keys=True)
    tensors = export_state(layer)
    itemsize = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    if max_shard_bytes is None:
        write_safetensors(os.path.join(directory, weights_name), tensors, dtype, {"format": "pt"})
        return
    shards, current, size = [], {}, 0
    for name in sorted(tensors):
        nbytes = tensors[name].size * itemsize
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = tensors[name]
        size += nbytes
    shards.append(current)
    stem = weights_name[: -len(".safetensors")]
    weight_map = {}
    for number, shard in enumerate(shards, 1):
        shard_name = f"{stem}-{number:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(os.path.join(directory, shard_name), shard, dtype, {"format": "pt"})
        weight_map.update({name: shard_name for name in shard})
    with open(os.path.join(directory, weights_name + ".index.json"), "w") as handle:
        json.dump({"metadata": {}, "weight_map": weight_map}, handle, indent=2, sort_keys=True)
