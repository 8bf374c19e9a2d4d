"""FLUX.1 transformer in Paddle, with diffusers' module names so diffusers checkpoints load key for key.

Blocks follow diffusers' calling convention: every double and single block takes
(hidden_states, encoder_hidden_states, temb, image_rotary_emb, joint_attention_kwargs) and returns
(encoder_hidden_states, hidden_states). The cache engine wraps blocks through that one interface.
"""
from typing import List, Optional, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from ppdiffusers.configuration_utils import ConfigMixin, register_to_config
from ppdiffusers.models.attention import FeedForward
from ppdiffusers.models.embeddings import (
    CombinedTimestepTextProjEmbeddings,
    PixArtAlphaTextProjection,
    TimestepEmbedding,
    Timesteps,
)
from ppdiffusers.models.transformer_2d import Transformer2DModelOutput
from ppdiffusers.models.modeling_utils import ModelMixin
from ppdiffusers.models.normalization import AdaLayerNormZero

from ..parallel.sequence import current as sequence_group
from .loading import PretrainedMixin


class RMSNorm(nn.Layer):
    """RMS norm over the last axis in fp32 (never the fused incubate kernel: it SIGILLs on some CPUs)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = self.create_parameter([dim], default_initializer=nn.initializer.Constant(1.0))

    def forward(self, x):
        h = x.astype("float32")
        h = h * paddle.rsqrt(h.pow(2).mean(axis=-1, keepdim=True) + self.eps)
        return (h * self.weight.astype("float32")).astype(x.dtype)


class AdaLayerNormZeroSingle(nn.Layer):
    def __init__(self, dim: int):
        super().__init__()
        self.silu = nn.Silu()
        self.linear = nn.Linear(dim, 3 * dim)
        self.norm = nn.LayerNorm(dim, epsilon=1e-6, weight_attr=False, bias_attr=False)

    def forward(self, x, emb):
        shift, scale, gate = self.linear(self.silu(emb)).chunk(3, axis=1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None], gate


class AdaLayerNormContinuous(nn.Layer):
    """Final adaptive norm: scale comes first in the projected embedding (diffusers' order)."""

    def __init__(self, dim: int, conditioning_dim: int, eps: float = 1e-6):
        super().__init__()
        self.silu = nn.Silu()
        self.linear = nn.Linear(conditioning_dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, epsilon=eps, weight_attr=False, bias_attr=False)

    def forward(self, x, conditioning):
        scale, shift = self.linear(self.silu(conditioning).cast(x.dtype)).chunk(2, axis=1)
        return self.norm(x) * (1 + scale)[:, None, :] + shift[:, None, :]


class CombinedTimestepGuidanceTextProjEmbeddings(nn.Layer):
    def __init__(self, embedding_dim: int, pooled_projection_dim: int):
        super().__init__()
        self.time_proj = Timesteps(num_channels=256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.timestep_embedder = TimestepEmbedding(in_channels=256, time_embed_dim=embedding_dim)
        self.guidance_embedder = TimestepEmbedding(in_channels=256, time_embed_dim=embedding_dim)
        self.text_embedder = PixArtAlphaTextProjection(pooled_projection_dim, embedding_dim, act_fn="silu")

    def forward(self, timestep, guidance, pooled_projection):
        dtype = pooled_projection.dtype
        time_emb = self.timestep_embedder(self.time_proj(timestep).cast(dtype))
        guidance_emb = self.guidance_embedder(self.time_proj(guidance).cast(dtype))
        return time_emb + guidance_emb + self.text_embedder(pooled_projection)


def rope_frequencies(ids, axes_dim: Sequence[int], theta: float = 10000.0):
    """cos/sin tables [S, sum(axes_dim)] for position ids [S, n_axes], computed in float64 like diffusers."""
    pos = ids.astype("float64")
    cos_parts, sin_parts = [], []
    for axis, dim in enumerate(axes_dim):
        exponent = paddle.arange(0, dim, 2, dtype="float64") / dim
        freqs = pos[:, axis : axis + 1] * (1.0 / (theta**exponent))[None, :]
        cos_parts.append(paddle.repeat_interleave(freqs.cos(), 2, axis=1).astype("float32"))
        sin_parts.append(paddle.repeat_interleave(freqs.sin(), 2, axis=1).astype("float32"))
    return paddle.concat(cos_parts, axis=-1), paddle.concat(sin_parts, axis=-1)


def apply_rope(x, rope):
    """x: [B, S, H, D]; rope: (cos, sin) of shape [S, D]; pairs (2i, 2i+1) rotate together."""
    cos, sin = rope
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    pairs = x.reshape(x.shape[:-1] + [-1, 2])
    rotated = paddle.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(x.shape)
    return (x.astype("float32") * cos + rotated.astype("float32") * sin).astype(x.dtype)


def attention(query, key, value):
    """Softmax attention on [B, S, H, D] tensors, returning [B, S, H*D]."""
    q, k, v = (t.transpose([0, 2, 1, 3]) for t in (query, key, value))
    scores = paddle.matmul(q * (query.shape[-1] ** -0.5), k, transpose_y=True)
    out = paddle.matmul(F.softmax(scores.astype("float32"), axis=-1).astype(v.dtype), v)
    out = out.transpose([0, 2, 1, 3])
    return out.reshape(out.shape[:2] + [-1])


class FluxAttention(nn.Layer):
    """Joint attention: image projections (to_q/k/v) and, for double blocks, text projections (add_*_proj)."""

    def __init__(self, dim: int, heads: int, head_dim: int, joint: bool, eps: float = 1e-6):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm_q, self.norm_k = RMSNorm(head_dim, eps), RMSNorm(head_dim, eps)
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, inner) for _ in range(3))
        self.joint = joint
        if joint:
            self.to_out = nn.LayerList([nn.Linear(inner, dim), nn.Dropout(0.0)])
            self.norm_added_q, self.norm_added_k = RMSNorm(head_dim, eps), RMSNorm(head_dim, eps)
            self.add_q_proj, self.add_k_proj, self.add_v_proj = (nn.Linear(dim, inner) for _ in range(3))
            self.to_add_out = nn.Linear(inner, dim)

    def _heads(self, x):
        return x.reshape(x.shape[:2] + [self.heads, self.head_dim])

    def forward(self, hidden_states, encoder_hidden_states=None, image_rotary_emb=None, text_len=0):
        """`text_len`: leading text tokens of a single block's joint sequence (replicated under sequence
        parallelism; the rest is this rank's image shard)."""
        query = self.norm_q(self._heads(self.to_q(hidden_states)))
        key = self.norm_k(self._heads(self.to_k(hidden_states)))
        value = self._heads(self.to_v(hidden_states))
        if self.joint:
            query = paddle.concat([self.norm_added_q(self._heads(self.add_q_proj(encoder_hidden_states))), query], 1)
            key = paddle.concat([self.norm_added_k(self._heads(self.add_k_proj(encoder_hidden_states))), key], 1)
            value = paddle.concat([self._heads(self.add_v_proj(encoder_hidden_states)), value], 1)
        if image_rotary_emb is not None:
            query, key = apply_rope(query, image_rotary_emb), apply_rope(key, image_rotary_emb)
        group = sequence_group()
        if group is not None:  # every rank's keys and values, one all-gather
            text = encoder_hidden_states.shape[1] if self.joint else text_len
            key, value = group.gather_tokens(paddle.concat([key, value], axis=-1), text).chunk(2, axis=-1)
        out = attention(query, key, value)
        if not self.joint:
            return out
        text_len = encoder_hidden_states.shape[1]
        return self.to_out[0](out[:, text_len:]), self.to_add_out(out[:, :text_len])


def _clip_fp16(x):
    return x.clip(-65504, 65504) if x.dtype == paddle.float16 else x


class FluxTransformerBlock(nn.Layer):
    """Double-stream block: separate image/text weights, joint attention."""

    def __init__(self, dim: int, num_attention_heads: int, attention_head_dim: int):
        super().__init__()
        self.norm1 = AdaLayerNormZero(dim)
        self.norm1_context = AdaLayerNormZero(dim)
        self.attn = FluxAttention(dim, num_attention_heads, attention_head_dim, joint=True)
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-6, weight_attr=False, bias_attr=False)
        self.ff = FeedForward(dim=dim, dim_out=dim, activation_fn="gelu-approximate")
        self.norm2_context = nn.LayerNorm(dim, epsilon=1e-6, weight_attr=False, bias_attr=False)
        self.ff_context = FeedForward(dim=dim, dim_out=dim, activation_fn="gelu-approximate")

    @staticmethod
    def _mlp(x, norm, ff, shift, scale, gate):
        return x + gate.unsqueeze(1) * ff(norm(x) * (1 + scale[:, None]) + shift[:, None])

    def forward(self, hidden_states, encoder_hidden_states, temb, image_rotary_emb=None, joint_attention_kwargs=None):
        norm_h, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(hidden_states, emb=temb)
        norm_e, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = self.norm1_context(encoder_hidden_states, emb=temb)
        attn_h, attn_e = self.attn(norm_h, norm_e, image_rotary_emb)
        hidden_states = hidden_states + gate_msa.unsqueeze(1) * attn_h
        hidden_states = self._mlp(hidden_states, self.norm2, self.ff, shift_mlp, scale_mlp, gate_mlp)
        encoder_hidden_states = encoder_hidden_states + c_gate_msa.unsqueeze(1) * attn_e
        encoder_hidden_states = self._mlp(
            encoder_hidden_states, self.norm2_context, self.ff_context, c_shift_mlp, c_scale_mlp, c_gate_mlp)
        return _clip_fp16(encoder_hidden_states), hidden_states


class FluxSingleTransformerBlock(nn.Layer):
    """Single-stream block over [text; image], with parallel attention and MLP."""

    def __init__(self, dim: int, num_attention_heads: int, attention_head_dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.mlp_hidden_dim = int(dim * mlp_ratio)
        self.norm = AdaLayerNormZeroSingle(dim)
        self.proj_mlp = nn.Linear(dim, self.mlp_hidden_dim)
        self.act_mlp = nn.GELU(approximate=True)
        self.proj_out = nn.Linear(dim + self.mlp_hidden_dim, dim)
        self.attn = FluxAttention(dim, num_attention_heads, attention_head_dim, joint=False)

    def forward(self, hidden_states, encoder_hidden_states, temb, image_rotary_emb=None, joint_attention_kwargs=None):
        text_len = encoder_hidden_states.shape[1]
        joint = paddle.concat([encoder_hidden_states, hidden_states], axis=1)
        normed, gate = self.norm(joint, emb=temb)
        mlp = self.act_mlp(self.proj_mlp(normed))
        attn = self.attn(normed, image_rotary_emb=image_rotary_emb, text_len=text_len)
        joint = _clip_fp16(joint + gate.unsqueeze(1) * self.proj_out(paddle.concat([attn, mlp], axis=2)))
        return joint[:, :text_len], joint[:, text_len:]


class FluxTransformer2DModel(PretrainedMixin, ModelMixin, ConfigMixin):
    """The FLUX.1 transformer (diffusers' `FluxTransformer2DModel`, same config keys and weight names)."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        patch_size: int = 1,
        in_channels: int = 64,
        out_channels: Optional[int] = None,
        num_layers: int = 19,
        num_single_layers: int = 38,
        attention_head_dim: int = 128,
        num_attention_heads: int = 24,
        joint_attention_dim: int = 4096,
        pooled_projection_dim: int = 768,
        guidance_embeds: bool = False,
        axes_dims_rope: List[int] = (16, 56, 56),
    ):
        super().__init__()
        self.out_channels = out_channels or in_channels
        self.inner_dim = dim = num_attention_heads * attention_head_dim
        self.axes_dims_rope = list(axes_dims_rope)
        if sum(self.axes_dims_rope) != attention_head_dim:
            raise ValueError(f"axes_dims_rope {self.axes_dims_rope} must sum to attention_head_dim {attention_head_dim}")
        embed_cls = CombinedTimestepGuidanceTextProjEmbeddings if guidance_embeds else CombinedTimestepTextProjEmbeddings
        self.time_text_embed = embed_cls(embedding_dim=dim, pooled_projection_dim=pooled_projection_dim)
        self.context_embedder = nn.Linear(joint_attention_dim, dim)
        self.x_embedder = nn.Linear(in_channels, dim)
        self.transformer_blocks = nn.LayerList(
            [FluxTransformerBlock(dim, num_attention_heads, attention_head_dim) for _ in range(num_layers)])
        self.single_transformer_blocks = nn.LayerList(
            [FluxSingleTransformerBlock(dim, num_attention_heads, attention_head_dim) for _ in range(num_single_layers)])
        self.norm_out = AdaLayerNormContinuous(dim, dim, eps=1e-6)
        self.proj_out = nn.Linear(dim, patch_size * patch_size * self.out_channels)
        self.sequence_parallel = None  # ppcache.parallel.enable_sequence_parallel sets a group

    def embed(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids, guidance):
        """Everything before the blocks: (hidden, encoder_hidden, temb, rope)."""
        hidden_states = self.x_embedder(hidden_states)
        timestep = timestep.cast(hidden_states.dtype) * 1000
        if guidance is not None and self.config.guidance_embeds:
            temb = self.time_text_embed(timestep, guidance.cast(hidden_states.dtype) * 1000, pooled_projections)
        else:
            temb = self.time_text_embed(timestep, pooled_projections)
        encoder_hidden_states = self.context_embedder(encoder_hidden_states)
        txt_ids = txt_ids[0] if txt_ids.ndim == 3 else txt_ids
        img_ids = img_ids[0] if img_ids.ndim == 3 else img_ids
        rope = rope_frequencies(paddle.concat([txt_ids, img_ids], axis=0), self.axes_dims_rope)
        return hidden_states, encoder_hidden_states, temb, rope

    def head(self, hidden_states, temb):
        return self.proj_out(self.norm_out(hidden_states, temb))

    def forward(
        self,
        hidden_states,
        encoder_hidden_states=None,
        pooled_projections=None,
        timestep=None,
        img_ids=None,
        txt_ids=None,
        guidance=None,
        joint_attention_kwargs=None,
        controlnet_block_samples=None,
        controlnet_single_block_samples=None,
        return_dict: bool = True,
        controlnet_blocks_repeat: bool = False,
    ):
        hidden_states, encoder_hidden_states, temb, rope = self.embed(
            hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids, guidance)
        group = self.sequence_parallel
        if group is None:
            output = self._blocks(hidden_states, encoder_hidden_states, temb, rope, joint_attention_kwargs,
                                  controlnet_block_samples, controlnet_single_block_samples, controlnet_blocks_repeat)
        else:
            group.check_tokens(hidden_states.shape[1])
            text_len = encoder_hidden_states.shape[1]
            rope = tuple(paddle.concat([r[:text_len], group.shard(r[text_len:], axis=0)]) for r in rope)
            shard = [group.shard(s) for s in controlnet_block_samples] if controlnet_block_samples else None
            single = ([group.shard(s) for s in controlnet_single_block_samples]
                      if controlnet_single_block_samples else None)
            with group.active():
                output = self._blocks(group.shard(hidden_states), encoder_hidden_states, temb, rope,
                                      joint_attention_kwargs, shard, single, controlnet_blocks_repeat)
            output = group.gather(output)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)

    def _blocks(self, hidden_states, encoder_hidden_states, temb, rope, joint_attention_kwargs,
                controlnet_block_samples, controlnet_single_block_samples, controlnet_blocks_repeat):
        """The blocks and the head: the output tokens of `hidden_states` (this rank's shard under sequence
        parallelism)."""
        for index, block in enumerate(self.transformer_blocks):
            encoder_hidden_states, hidden_states = block(
                hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states, temb=temb,
                image_rotary_emb=rope, joint_attention_kwargs=joint_attention_kwargs)
            if controlnet_block_samples is not None:
                if controlnet_blocks_repeat:
                    sample = controlnet_block_samples[index % len(controlnet_block_samples)]
                else:
                    interval = -(-len(self.transformer_blocks) // len(controlnet_block_samples))
                    sample = controlnet_block_samples[index // interval]
                hidden_states = hidden_states + sample
        for index, block in enumerate(self.single_transformer_blocks):
            encoder_hidden_states, hidden_states = block(
                hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states, temb=temb,
                image_rotary_emb=rope, joint_attention_kwargs=joint_attention_kwargs)
            if controlnet_single_block_samples is not None:
                interval = -(-len(self.single_transformer_blocks) // len(controlnet_single_block_samples))
                hidden_states = hidden_states + controlnet_single_block_samples[index // interval]
        return self.head(hidden_states, temb)
