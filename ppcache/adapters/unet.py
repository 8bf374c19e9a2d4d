"""PPDiffusers' UNet2DConditionModel (StableDiffusionPipeline, StableDiffusionXLPipeline): DeepCache only.

Blocks, in execution order: down_blocks[0..D-1], mid_block (an attribute slot), up_blocks[0..U-1]. Block outputs
are opaque to the engine: a down block returns (hidden_states, res_samples) and is flattened into the streams
(hidden_states, *res_samples); the mid and up blocks return one tensor, the single stream. Input streams are
(hidden_states,). The UNet consumes every down block's res_samples through the skip connections, so a predicted
block must return its complete output (DeepCache returns each cached block's stored output; a multi-block
pass-through span, as the transformer methods use, would drop skip tensors and is not meaningful here).

Cost estimate (`block_macs`, shapes only, no device sync): per block, the sum over its Conv2D and Linear layers of
weight size x output positions, plus the two attention products (QK^T and AV) of every Attention layer.
Positions come from the block's input size H x W, batch B and text length L:
- a Conv2D with stride s produces ceil(H/s) x ceil(W/s) positions (resnet and downsampler convs, 1x1 proj_in);
  an upsampler's conv runs after the 2x nearest upsampling, at 2H x 2W;
- a Linear in a ResNet block (time_emb_proj) runs once per sample;
- the key/value projections of a cross-attention run on L text tokens, every other Linear on H x W tokens;
- self-attention adds 2 * (HW)^2 * inner_dim, cross-attention 2 * HW * L * inner_dim.
Norms, activations and the nearest-neighbour upsampling are left out (they are memory-bound and small). The
per-block coefficients are collected once from the weights' shapes; each call only multiplies them by its sizes.
"""
import math

import paddle.nn as nn

from .base import Adapter, BlockIO, call_arguments


class UNetBlockIO(BlockIO):
    """BlockIO plus the cross-attention context (its length enters the cost estimate)."""

    __slots__ = ("encoder_hidden_states",)

    def __init__(self, streams, temb, encoder_hidden_states=None):
        super().__init__(streams, temb)
        self.encoder_hidden_states = encoder_hidden_states


class _BlockCost:
    """Shape-independent MAC coefficients of one UNet block (see the module docstring)."""

    def __init__(self, block):
        self.convs = {}  # (upscale, stride) -> summed weight size of the Conv2D/Linear layers at that geometry
        self.per_sample = 0  # Linear layers run once per sample (time embedding projections)
        self.per_text_token = 0  # cross-attention key/value projections
        self.self_attention = 0  # sum of inner_dim over self-attention layers (x 2 (HW)^2)
        self.cross_attention = 0  # sum of inner_dim over cross-attention layers (x 2 HW L)
        cross_projections = set()
        for name, layer in block.named_sublayers(include_self=True):
            if type(layer).__name__ == "Attention" and getattr(layer, "to_q", None) is not None:
                inner_dim = layer.to_q.weight.shape[1]
                if _is_cross_attention(block, name):
                    self.cross_attention += inner_dim
                    for projection in ("to_k", "to_v", "add_k_proj", "add_v_proj"):
                        if getattr(layer, projection, None) is not None:
                            cross_projections.add(id(getattr(layer, projection)))
                else:
                    self.self_attention += inner_dim
        for name, layer in block.named_sublayers(include_self=True):
            if isinstance(layer, nn.Linear):
                size = int(math.prod(layer.weight.shape))
                if id(layer) in cross_projections:
                    self.per_text_token += size
                elif ".resnets." in f".{name}.":
                    self.per_sample += size
                else:
                    self._add(1, 1, size)
            elif isinstance(layer, nn.Conv2D):
                stride = layer._stride
                stride = stride[0] if isinstance(stride, (list, tuple)) else stride
                upscale = 2 if "upsamplers" in name.split(".") else 1
                self._add(upscale, int(stride), int(math.prod(layer.weight.shape)))

    def _add(self, upscale, stride, size):
        self.convs[(upscale, stride)] = self.convs.get((upscale, stride), 0) + size

    def macs(self, batch, height, width, text_tokens):
        hw = height * width
        total = self.per_sample + self.per_text_token * text_tokens
        for (upscale, stride), size in self.convs.items():
            total += size * math.ceil(height * upscale / stride) * math.ceil(width * upscale / stride)
        total += 2 * hw * (self.self_attention * hw + self.cross_attention * text_tokens)
        return batch * total


def _is_cross_attention(block, name):
    """attn2 of a BasicTransformerBlock attends to the text unless the block doubles self-attention; attn1 does
    only with only_cross_attention."""
    parent_name, _, leaf = name.rpartition(".")
    parent = block
    for part in parent_name.split(".") if parent_name else ():
        parent = getattr(parent, part) if not part.isdigit() else parent[int(part)]
    if leaf == "attn2":
        return not getattr(parent, "double_self_attention", False)
    if leaf == "attn1":
        return bool(getattr(parent, "only_cross_attention", False))
    return False


class UNetAdapter(Adapter):
    family = "unet"
    timestep_scale = 1.0  # the SD/SDXL pipelines pass the scheduler's timestep, already on 0..1000

    def __init__(self, transformer):
        super().__init__(transformer)
        self.down_blocks = list(transformer.down_blocks)
        self.mid_block = getattr(transformer, "mid_block", None)
        self.up_blocks = list(transformer.up_blocks)
        self._down_ids = {id(block) for block in self.down_blocks}
        self._costs = {}
        self.data_format = getattr(transformer, "data_format", "NCHW")

    @classmethod
    def matches(cls, transformer):
        return (any(klass.__name__ == "UNet2DConditionModel" for klass in type(transformer).__mro__)
                and hasattr(transformer, "down_blocks") and hasattr(transformer, "up_blocks"))

    def block_slots(self):
        unet = self.transformer
        slots = [(unet.down_blocks, i, block) for i, block in enumerate(self.down_blocks)]
        if self.mid_block is not None:
            slots.append((unet, "mid_block", self.mid_block))
        slots += [(unet.up_blocks, i, block) for i, block in enumerate(self.up_blocks)]
        return slots

    def layout(self):
        """(number of down blocks, engine index of the mid block or None, number of up blocks)."""
        num_down = len(self.down_blocks)
        return num_down, (num_down if self.mid_block is not None else None), len(self.up_blocks)

    # --- per block ---
    def read_inputs(self, block, args, kwargs):
        bound = call_arguments(block, args, kwargs)
        return UNetBlockIO((bound["hidden_states"],), bound.get("temb"), bound.get("encoder_hidden_states"))

    def read_outputs(self, block, output):
        if id(block) in self._down_ids:
            hidden_states, res_samples = output
            return (hidden_states,) + tuple(res_samples)
        return (output,)

    def make_output(self, block, streams):
        if id(block) in self._down_ids:
            return streams[0], tuple(streams[1:])
        return streams[0]

    def modulated_input(self, block, io):
        raise NotImplementedError("UNet blocks have no adaLN modulated input; only DeepCache supports UNets")

    def component_macs(self, block, io):
        cost = self._costs.get(id(block))
        if cost is None:
            cost = self._costs[id(block)] = _BlockCost(block)
        shape = io.streams[0].shape
        if self.data_format == "NHWC":
            batch, height, width = shape[0], shape[1], shape[2]
        else:
            batch, height, width = shape[0], shape[2], shape[3]
        context = io.encoder_hidden_states if isinstance(io, UNetBlockIO) else None
        text_tokens = context.shape[1] if context is not None else height * width  # no context: self-attention
        return {"block": cost.macs(batch, height, width, text_tokens)}

    # --- per call ---
    def timestep_of_call(self, args, kwargs):
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        if t is None:
            return None
        value = t.reshape([-1])[0] if hasattr(t, "reshape") else t
        return float(value) * self.timestep_scale
