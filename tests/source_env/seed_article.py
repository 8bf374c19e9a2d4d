"""The PaddleMIX seed article's SortBlock code with `ppdiffusers` changed to `ppcache` in its import line, and the
bundled tiny-flux at 20 steps and 32x32 in place of FLUX.1-dev at 50 steps and 1024x1024. Run in a subprocess with
PPDiffusers from source first on the import path; prints one JSON object for test_ppdiffusers_source.py."""
import json

import numpy as np
import paddle
from ppcache import FluxPipeline, SortBlockConfig, apply_sort_block

import ppcache
from ppcache.bench.metrics import ssim

MODEL = ppcache.config.resolve_model_path("tiny-flux")
prompt = "a photo of a cat"


def generate(pipe):
    return pipe(prompt, height=32, width=32, guidance_scale=3.5, num_inference_steps=20, max_sequence_length=16,
                generator=paddle.Generator().manual_seed(42), output_type="np").images[0]


# --- the article's code (model, steps and resolution substituted) ---------------------------------------------
pipe = FluxPipeline.from_pretrained(MODEL, paddle_dtype=paddle.float32)
pipe.set_progress_bar_config(disable=True)
uncached = generate(pipe)
blocks_before = [id(b) for b in list(pipe.transformer.transformer_blocks) + list(pipe.transformer.single_transformer_blocks)]
forward_before = pipe.transformer.forward

config = SortBlockConfig(num_inference_steps=20, timestep_start=900, timestep_end=100, percentage=1.0,
                         step_num=1, step_num2=5, beta=0.3,
                         current_timestep_callback=lambda: getattr(pipe, "_current_timestep", None))
apply_sort_block(pipe.transformer, config)
image = generate(pipe)
# -------------------------------------------------------------------------------------------------------------

stats = ppcache.summary(pipe.transformer)
ppcache.remove_cache(pipe.transformer)
restored = generate(pipe)
blocks_after = [id(b) for b in list(pipe.transformer.transformer_blocks) + list(pipe.transformer.single_transformer_blocks)]
print(json.dumps({
    "pipeline_mro": [f"{c.__module__}.{c.__name__}" for c in type(pipe).__mro__],
    "compute_fraction": stats["compute_fraction"], "blocks_predicted": stats["blocks_predicted"],
    "steps": stats["steps"], "notices": stats["notices"],
    "ssim_cached": float(ssim(image, uncached)),
    "restored_bitwise": bool(np.array_equal(restored, uncached)),
    "blocks_restored": blocks_after == blocks_before,
    "forward_restored": pipe.transformer.forward == forward_before and "forward" not in pipe.transformer.__dict__,
}))
