"""Sample grids of a trained pipeline directory."""
import numpy as np

DEFAULT_STEPS = 20


def generate(pipe, prompts, steps, seeds, **kwargs):
    """One float image [H, W, 3] in [0, 1] per (prompt, seed), at the pipeline's default resolution (a video: its
    frames side by side)."""
    import paddle

    from ..pipelines.run import first_output, is_video, model_call_kwargs

    pipe.set_progress_bar_config(disable=True)
    if is_video(pipe):  # video pipelines default to 480x832
        from .dataset import IMAGE_SIZE

        kwargs = {"height": IMAGE_SIZE, "width": IMAGE_SIZE, **kwargs}
    images = []
    for prompt, seed in zip(prompts, seeds):
        generator = paddle.Generator().manual_seed(int(seed))
        out = pipe(prompt=prompt, num_inference_steps=steps, generator=generator, output_type="np",
                   **model_call_kwargs(pipe), **kwargs)
        result = np.asarray(first_output(pipe, out))
        images.append(np.concatenate(list(result), axis=1) if is_video(pipe) else result)
    return images


def tile(images, columns, upscale=3):
    rows = [np.concatenate(images[i: i + columns], axis=1) for i in range(0, len(images), columns)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in rows]
    grid = np.concatenate(rows, axis=0)
    return np.repeat(np.repeat(grid, upscale, axis=0), upscale, axis=1)


def sample_grid(pipeline_dir, path, steps=DEFAULT_STEPS, seeds_per_prompt=2):
    from PIL import Image

    from ..pipelines.loading import load_pipeline
    from .dataset import subject_prompts

    pipe = load_pipeline(pipeline_dir)
    prompts = subject_prompts()
    images = []
    for seed in range(seeds_per_prompt):
        images += generate(pipe, prompts, steps, [seed] * len(prompts))
    wide = images[0].shape[1] > images[0].shape[0]  # videos: a few clips per row
    grid = tile(images, columns=4 if wide else len(prompts) // 2)
    Image.fromarray((grid * 255).round().astype(np.uint8)).save(path)
    return path

