"""Per pipeline family, how the peers' diffusers pipeline is built on the same directory as ppcache's pipeline and
fed the same inputs: the prompt embeddings and the initial noise come from ppcache's Paddle pipeline (so an uncached
peer run reproduces ppcache's uncached image), and the per-block MACs from ppcache's adapter of that family."""
import inspect
import json
import os
import types

import numpy as np

from ..adapters.base import BlockIO
from ..adapters.flux import FluxAdapter
from ..adapters.pixart import PixArtAdapter
from ..adapters.wan import WanAdapter
from ..errors import PPCacheError, UnsupportedModelError


class PeerFamily:
    pipeline_class = ""  # model_index.json `_class_name` of the ppcache / PPDiffusers pipeline
    diffusers_pipeline = ""
    diffusers_transformer = ""
    adapter_class = None  # ppcache's adapter of the family: its block lists and cost model
    empty_components = ()  # the text encoders and tokenizers: the prompt embeddings come from ppcache
    taylorseer_identifiers = None  # modules diffusers' TaylorSeer hook predicts (None: its default attentions)

    def build(self, diffusers, model_path, vae=None, scheduler=None):
        """diffusers' pipeline on the directory's transformer, VAE and scheduler (shared when given)."""
        transformer = from_directory(self.transformer_class(diffusers), os.path.join(model_path, "transformer"))
        if vae is None:
            vae = self.load_vae(diffusers, os.path.join(model_path, "vae"))
        if scheduler is None:
            scheduler = scheduler_class(diffusers, model_path).from_pretrained(os.path.join(model_path, "scheduler"))
        pipe = getattr(diffusers, self.diffusers_pipeline)(
            transformer=transformer, vae=vae, scheduler=scheduler, **{name: None for name in self.empty_components})
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def load_vae(self, diffusers, directory):
        return from_directory(diffusers.AutoencoderKL, directory)

    def transformer_class(self, diffusers):
        """diffusers' transformer class with its cache hooks (`enable_cache` / `disable_cache`)."""
        cls = getattr(diffusers, self.diffusers_transformer)
        if hasattr(cls, "enable_cache"):
            return cls
        if cls not in _WITH_CACHE:
            _WITH_CACHE[cls] = _with_cache_hooks(cls)
        return _WITH_CACHE[cls]

    def inputs(self, pipe, prompt, seed, height, width):
        """{diffusers call argument: numpy array} exactly as ppcache's pipeline makes them for (prompt, seed)."""
        raise NotImplementedError

    def call_kwargs(self):
        return {}

    def blocks(self, transformer):
        """The blocks of ppcache's or diffusers' transformer of the family (the same module lists)."""
        return [block for name in self.adapter_class.block_list_names for block in getattr(transformer, name)]

    def block_weights(self, ppcache_transformer, inputs):
        """Per block, {component: MACs} of one call (ppcache's cost model of the family, shapes only)."""
        adapter = self.adapter_class(ppcache_transformer)
        shapes = self.stream_shapes(adapter, ppcache_transformer.config, inputs)
        return component_weights(adapter, self.blocks(ppcache_transformer), shapes)

    def stream_shapes(self, adapter, config, inputs):
        """The shapes of the streams one block call sees, in the adapter's order."""
        raise NotImplementedError


class FluxPeer(PeerFamily):
    pipeline_class = diffusers_pipeline = "FluxPipeline"
    adapter_class = FluxAdapter
    diffusers_transformer = "FluxTransformer2DModel"
    empty_components = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")

    def inputs(self, pipe, prompt, seed, height, width):
        import paddle

        embeds, pooled, _ = pipe.encode_prompt(prompt)
        latents, _ = pipe.prepare_latents(1, height, width, pipe.transformer.dtype,
                                          generator=paddle.Generator().manual_seed(int(seed)))
        return dict(prompt_embeds=_numpy(embeds), pooled_prompt_embeds=_numpy(pooled), latents=_numpy(latents))

    def stream_shapes(self, adapter, config, inputs):
        dim = config.num_attention_heads * config.attention_head_dim
        return [(1, inputs["latents"].shape[1], dim), (1, inputs["prompt_embeds"].shape[1], dim)]


class PixArtPeer(PeerFamily):
    pipeline_class = diffusers_pipeline = "PixArtAlphaPipeline"
    adapter_class = PixArtAdapter
    diffusers_transformer = "PixArtTransformer2DModel"
    empty_components = ("text_encoder", "tokenizer")
    # the hook's default patterns end in `attn` (FLUX's blocks); PixArt's attentions are attn1 / attn2
    taylorseer_identifiers = [r"^transformer_blocks.*attn[12]"]

    def inputs(self, pipe, prompt, seed, height, width):
        import paddle

        embeds, mask, negative, negative_mask = pipe.encode_prompt(prompt, True, negative_prompt="",
                                                                   clean_caption=False)
        latents = pipe.prepare_latents(1, pipe.transformer.config.in_channels, height, width, embeds.dtype,
                                       paddle.Generator().manual_seed(int(seed)))
        # both pipelines scale the given noise by init_noise_sigma themselves
        latents = latents / float(pipe.scheduler.init_noise_sigma)
        return dict(prompt_embeds=_numpy(embeds), prompt_attention_mask=_numpy(mask, "int64"),
                    negative_prompt_embeds=_numpy(negative),
                    negative_prompt_attention_mask=_numpy(negative_mask, "int64"), latents=_numpy(latents))

    def call_kwargs(self):
        return dict(use_resolution_binning=False, clean_caption=False, negative_prompt=None)

    def stream_shapes(self, adapter, config, inputs):
        adapter.context_tokens = int(inputs["prompt_embeds"].shape[1])  # the cross-attention's keys and values
        _, _, height, width = inputs["latents"].shape
        tokens = (height // config.patch_size) * (width // config.patch_size)
        # classifier-free guidance: a batch of two
        return [(2, tokens, config.num_attention_heads * config.attention_head_dim)]


class WanPeer(PeerFamily):
    """Wan2.1 text-to-video: diffusers' WanPipeline runs the conditional and unconditional calls one after the
    other, each in its own cache context (its transformer has diffusers' cache hooks)."""
    pipeline_class = diffusers_pipeline = "WanPipeline"
    adapter_class = WanAdapter
    diffusers_transformer = "WanTransformer3DModel"
    empty_components = ("text_encoder", "tokenizer")
    taylorseer_identifiers = [r"^blocks.*attn[12]"]

    def load_vae(self, diffusers, directory):
        # diffusers reads the VAE's scale factors from its config (defaults 4 and 8); PPDiffusers derives them
        # from the downsampling layout, which is what the directory describes
        with open(os.path.join(directory, "config.json")) as handle:
            temporal = json.load(handle).get("temperal_downsample", [False, True, True])
        return from_directory(diffusers.AutoencoderKLWan, directory,
                              scale_factor_temporal=2 ** sum(map(bool, temporal)),
                              scale_factor_spatial=2 ** len(temporal))

    def inputs(self, pipe, prompt, seed, height, width):
        import paddle

        from ..pipelines.run import video_call_kwargs

        call = video_call_kwargs(pipe)
        frames = call.get("num_frames", 81)  # 81: both pipelines' default
        embeds, negative = pipe.encode_prompt(prompt, negative_prompt="", do_classifier_free_guidance=True,
                                              max_sequence_length=call["max_sequence_length"])
        latents = pipe.prepare_latents(1, pipe.transformer.config.in_channels, height, width, frames,
                                       paddle.float32, generator=paddle.Generator().manual_seed(int(seed)))
        return dict(prompt_embeds=_numpy(embeds), negative_prompt_embeds=_numpy(negative), latents=_numpy(latents),
                    num_frames=int(frames))

    def stream_shapes(self, adapter, config, inputs):
        adapter.context_tokens = int(inputs["prompt_embeds"].shape[1])
        _, _, frames, height, width = inputs["latents"].shape
        patch_frames, patch_height, patch_width = config.patch_size
        tokens = (frames // patch_frames) * (height // patch_height) * (width // patch_width)
        # conditional and unconditional: two calls of one
        return [(1, tokens, config.num_attention_heads * config.attention_head_dim)]


FAMILIES = (FluxPeer(), PixArtPeer(), WanPeer())
_WITH_CACHE = {}


def peer_family(pipeline_class, model_path):
    for family in FAMILIES:
        if family.pipeline_class == pipeline_class:
            return family
    names = ", ".join(f.pipeline_class for f in FAMILIES)
    raise UnsupportedModelError(f"{model_path}: peers run on {names} directories, this is {pipeline_class}")


def from_directory(cls, directory, **config):
    """A diffusers model built from its config (updated with `config`) and given the directory's safetensors
    weights, every one of its tensors required; in eval mode. (`from_pretrained` without low_cpu_mem_usage refuses
    models that keep modules in float32, such as Wan's, and with it needs accelerate.)"""
    from safetensors.torch import load_file

    model = cls.from_config(dict(cls.load_config(directory), **config))
    name = "diffusion_pytorch_model.safetensors"
    files = [name]
    if os.path.exists(os.path.join(directory, name + ".index.json")):  # sharded
        with open(os.path.join(directory, name + ".index.json")) as handle:
            files = sorted(set(json.load(handle)["weight_map"].values()))
    weights = {}
    for file in files:
        weights.update(load_file(os.path.join(directory, file)))
    missing = model.load_state_dict(weights, strict=False).missing_keys
    if missing:  # extra tensors are fine (PPDiffusers' PixArt saves its caption projection's y_embedding)
        raise PPCacheError(f"{directory}: the weights lack {len(missing)} tensor(s) of diffusers' {cls.__name__}, "
                           f"e.g. {missing[0]}")
    return model.eval()


def default_guidance(pipe):
    """The guidance scale a call of ppcache's pipeline uses when none is given (as the benchmark's samples)."""
    return inspect.signature(type(pipe).__call__).parameters["guidance_scale"].default


def scheduler_class(diffusers, model_path):
    with open(os.path.join(model_path, "scheduler", "scheduler_config.json")) as handle:
        return getattr(diffusers, json.load(handle)["_class_name"])


def flux_block_weights(transformer, image_tokens, text_tokens):
    """Per FLUX block, {component: MACs} of one call, attention first. `transformer`: ppcache's or diffusers' FLUX
    transformer (only its config and blocks are read)."""
    family = FluxPeer()
    shapes = family.stream_shapes(None, transformer.config, {"latents": np.empty((1, image_tokens, 0)),
                                                              "prompt_embeds": np.empty((1, text_tokens, 0))})
    return component_weights(FluxAdapter(transformer), family.blocks(transformer), shapes)


def component_weights(adapter, blocks, shapes):
    """Per block, the adapter's {component: MACs} for streams of these shapes (stand-ins: no tensors)."""
    io = BlockIO(tuple(types.SimpleNamespace(shape=shape) for shape in shapes), None)
    return [adapter.component_macs(block, io) for block in blocks]


def _with_cache_hooks(cls):
    """`cls` with diffusers' CacheMixin, each call in one cache context (diffusers' hooks support this family's
    blocks, but its model class lacks the mixin and its pipeline sets no context; the batch holds both
    classifier-free guidance branches, as the pipeline calls the transformer once per step)."""
    from diffusers.models.cache_utils import CacheMixin

    def forward(self, *args, **kwargs):
        if not self.is_cache_enabled:
            return cls.forward(self, *args, **kwargs)
        with self.cache_context("cond_uncond"):
            return cls.forward(self, *args, **kwargs)

    return type(cls.__name__, (CacheMixin, cls), {"forward": forward})


def _numpy(tensor, dtype="float32"):
    return tensor.cast(dtype).numpy()
