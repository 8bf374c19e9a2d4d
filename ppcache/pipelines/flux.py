"""FluxPipeline for Paddle with the diffusers call shape (PyPI ppdiffusers 0.29 has no FLUX)."""
from typing import List, Optional, Union

import numpy as np
import paddle
from ppdiffusers.image_processor import VaeImageProcessor
from ppdiffusers.utils.paddle_utils import randn_tensor
from tqdm.auto import tqdm

from .flow_match_scheduler import calculate_shift


class FluxPipelineOutput:
    def __init__(self, images):
        self.images = images

    def __getitem__(self, index):
        return (self.images,)[index]


class FluxPipeline:
    """Text-to-image with a FLUX transformer: CLIP (pooled) + T5 (sequence) text encoders, 2x2-packed latents,
    flow-match Euler sampling with dynamic shift, optional guidance embedding and optional true CFG."""

    model_components = ("scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2",
                        "transformer")

    def __init__(self, scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer):
        self.scheduler, self.vae, self.transformer = scheduler, vae, transformer
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.text_encoder_2, self.tokenizer_2 = text_encoder_2, tokenizer_2
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor * 2)
        self.default_sample_size = int(getattr(vae.config, "sample_size", 1024) or 1024)
        self._progress_bar_config = {}
        self._current_timestep = None
        self._num_timesteps = 0
        self._interrupt = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, paddle_dtype=None, **unused):
        from .components import build_pipeline, read_model_index

        path = str(pretrained_model_name_or_path)
        index = read_model_index(path)
        if index.get("_class_name") != cls.__name__:
            raise TypeError(f"{path} holds a {index.get('_class_name')}, not a {cls.__name__}")
        return build_pipeline(cls, path, index, paddle_dtype)

    @property
    def components(self):
        return {name: getattr(self, name) for name in self.model_components}

    def set_progress_bar_config(self, **kwargs):
        self._progress_bar_config = kwargs

    @property
    def interrupt(self):
        return self._interrupt

    # ---- text ---------------------------------------------------------------------------------------------
    def default_max_sequence_length(self):
        return min(512, int(getattr(self.tokenizer_2, "model_max_length", 512) or 512))

    def _clip_pooled(self, prompt: List[str]):
        ids = self.tokenizer(prompt, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pd")["input_ids"]
        return self.text_encoder(ids, return_dict=True).pooler_output

    def _t5_sequence(self, prompt: List[str], max_sequence_length: int):
        ids = self.tokenizer_2(prompt, padding="max_length", max_length=max_sequence_length, truncation=True,
                               return_tensors="pd")["input_ids"]
        return self.text_encoder_2(ids, return_dict=True).last_hidden_state

    def encode_prompt(self, prompt, prompt_2=None, num_images_per_prompt=1, prompt_embeds=None,
                      pooled_prompt_embeds=None, max_sequence_length=None):
        """Returns (prompt_embeds [B, L, joint_dim], pooled_prompt_embeds [B, pooled_dim], text_ids [L, 3])."""
        dtype = self.transformer.dtype
        max_sequence_length = max_sequence_length or self.default_max_sequence_length()
        if prompt_embeds is None:
            prompt = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_2 = prompt if prompt_2 is None else ([prompt_2] if isinstance(prompt_2, str) else list(prompt_2))
            with paddle.no_grad():
                pooled_prompt_embeds = self._clip_pooled(prompt)
                prompt_embeds = self._t5_sequence(prompt_2, max_sequence_length)
        prompt_embeds = paddle.repeat_interleave(prompt_embeds.cast(dtype), num_images_per_prompt, axis=0)
        pooled_prompt_embeds = paddle.repeat_interleave(pooled_prompt_embeds.cast(dtype), num_images_per_prompt, 0)
        text_ids = paddle.zeros([prompt_embeds.shape[1], 3], dtype=dtype)
        return prompt_embeds, pooled_prompt_embeds, text_ids

    # ---- latents ------------------------------------------------------------------------------------------
    @staticmethod
    def pack_latents(latents):
        """[B, C, H, W] -> [B, (H/2)(W/2), 4C]"""
        b, c, h, w = latents.shape
        latents = latents.reshape([b, c, h // 2, 2, w // 2, 2]).transpose([0, 2, 4, 1, 3, 5])
        return latents.reshape([b, (h // 2) * (w // 2), c * 4])

    @staticmethod
    def unpack_latents(latents, latent_height, latent_width):
        b, _, channels = latents.shape
        latents = latents.reshape([b, latent_height // 2, latent_width // 2, channels // 4, 2, 2])
        latents = latents.transpose([0, 3, 1, 4, 2, 5])
        return latents.reshape([b, channels // 4, latent_height, latent_width])

    @staticmethod
    def latent_image_ids(rows, cols, dtype):
        ids = np.zeros((rows, cols, 3), dtype=np.float32)
        ids[..., 1] = np.arange(rows)[:, None]
        ids[..., 2] = np.arange(cols)[None, :]
        return paddle.to_tensor(ids.reshape(rows * cols, 3)).cast(dtype)

    def latent_size(self, height, width):
        unit = self.vae_scale_factor * 2
        if height % unit or width % unit or height <= 0 or width <= 0:
            raise ValueError(f"height and width must be positive multiples of {unit} for this model, "
                             f"got {height}x{width}")
        return 2 * (height // unit), 2 * (width // unit)

    def prepare_latents(self, batch_size, height, width, dtype, generator=None, latents=None):
        latent_h, latent_w = self.latent_size(height, width)
        ids = self.latent_image_ids(latent_h // 2, latent_w // 2, dtype)
        if latents is not None:
            return latents.cast(dtype), ids
        channels = self.transformer.config.in_channels // 4
        noise = randn_tensor([batch_size, channels, latent_h, latent_w], generator=generator, dtype=paddle.float32)
        return self.pack_latents(noise).cast(dtype), ids

    def decode(self, latents, height, width, output_type):
        if output_type == "latent":
            return latents
        latent_h, latent_w = self.latent_size(height, width)
        latents = self.unpack_latents(latents, latent_h, latent_w)
        config = self.vae.config
        latents = latents / config.scaling_factor + (getattr(config, "shift_factor", None) or 0.0)
        with paddle.no_grad():
            image = self.vae.decode(latents.cast(self.vae.dtype), return_dict=False)[0]
        return self.image_processor.postprocess(image, output_type=output_type)

    # ---- sampling -----------------------------------------------------------------------------------------
    def timesteps_for(self, num_inference_steps, image_seq_len, sigmas=None):
        config = self.scheduler.config
        mu = None
        if getattr(config, "use_dynamic_shifting", False):
            mu = calculate_shift(image_seq_len, config.base_image_seq_len, config.max_image_seq_len,
                                 config.base_shift, config.max_shift)
        if sigmas is None:
            sigmas = np.linspace(1.0, 1.0 / num_inference_steps, num_inference_steps)
        self.scheduler.set_timesteps(num_inference_steps, sigmas=sigmas, mu=mu)
        return self.scheduler.timesteps

    def _predict(self, latents, timestep, guidance, embeds, pooled, text_ids, image_ids, joint_attention_kwargs):
        return self.transformer(
            hidden_states=latents, timestep=timestep / 1000, guidance=guidance, pooled_projections=pooled,
            encoder_hidden_states=embeds, txt_ids=text_ids, img_ids=image_ids,
            joint_attention_kwargs=joint_attention_kwargs, return_dict=False)[0]

    @paddle.no_grad()
    def __call__(
        self,
        prompt: Union[str, List[str]] = None,
        prompt_2: Optional[Union[str, List[str]]] = None,
        negative_prompt: Optional[Union[str, List[str]]] = None,
        true_cfg_scale: float = 1.0,
        height: Optional[int] = None,
        width: Optional[int] = None,
        num_inference_steps: int = 28,
        sigmas: Optional[List[float]] = None,
        guidance_scale: float = 3.5,
        num_images_per_prompt: int = 1,
        generator=None,
        latents=None,
        prompt_embeds=None,
        pooled_prompt_embeds=None,
        negative_prompt_embeds=None,
        negative_pooled_prompt_embeds=None,
        output_type: str = "pil",
        return_dict: bool = True,
        joint_attention_kwargs=None,
        callback_on_step_end=None,
        max_sequence_length: Optional[int] = None,
    ):
        height = height or self.default_sample_size
        width = width or self.default_sample_size
        if prompt is None and prompt_embeds is None:
            raise ValueError("pass `prompt` or `prompt_embeds`")
        dtype = self.transformer.dtype
        embeds, pooled, text_ids = self.encode_prompt(
            prompt, prompt_2, num_images_per_prompt, prompt_embeds, pooled_prompt_embeds, max_sequence_length)
        batch_size = embeds.shape[0]
        do_true_cfg = true_cfg_scale > 1 and (negative_prompt is not None or negative_prompt_embeds is not None)
        if do_true_cfg:
            if negative_prompt is not None and negative_prompt_embeds is None:
                negative_prompt = [negative_prompt] * (batch_size // num_images_per_prompt) \
                    if isinstance(negative_prompt, str) else negative_prompt
            neg_embeds, neg_pooled, _ = self.encode_prompt(
                negative_prompt, None, num_images_per_prompt, negative_prompt_embeds, negative_pooled_prompt_embeds,
                embeds.shape[1])

        latents, image_ids = self.prepare_latents(batch_size, height, width, dtype, generator, latents)
        timesteps = self.timesteps_for(num_inference_steps, latents.shape[1], sigmas)
        self._num_timesteps = len(timesteps)
        guidance = None
        if self.transformer.config.guidance_embeds:
            guidance = paddle.full([batch_size], guidance_scale, dtype="float32")

        self._interrupt = False
        for i, t_host in enumerate(tqdm(self.scheduler.timesteps_host, **self._progress_bar_config)):
            if self._interrupt:
                break
            self._current_timestep = t_host
            timestep = paddle.full([batch_size], t_host, dtype=latents.dtype)
            noise_pred = self._predict(latents, timestep, guidance, embeds, pooled, text_ids, image_ids,
                                       joint_attention_kwargs)
            if do_true_cfg:
                neg_pred = self._predict(latents, timestep, guidance, neg_embeds, neg_pooled, text_ids, image_ids,
                                         joint_attention_kwargs)
                noise_pred = neg_pred + true_cfg_scale * (noise_pred - neg_pred)
            latents = self.scheduler.step(noise_pred, t_host, latents, return_dict=False)[0]
            if callback_on_step_end is not None:
                callback_kwargs = callback_on_step_end(self, i, t_host, {"latents": latents}) or {}
                latents = callback_kwargs.get("latents", latents)
        self._current_timestep = None

        images = self.decode(latents, height, width, output_type)
        if not return_dict:
            return (images,)
        return FluxPipelineOutput(images)
