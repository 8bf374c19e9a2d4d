"""The FLUX-shaped timing model (random weights) and a cached or stock generation on it, timed.

Used by tools/benchmark_overhead.py and tools/benchmark_ops.py: hidden 512, 3 double + 9 single blocks,
1024 image + 64 text tokens by default. Random weights are fine for timing, not for quality.
"""
import time

TIMING_MODEL = dict(in_channels=64, num_layers=3, num_single_layers=9, attention_head_dim=128, num_attention_heads=4,
                    joint_attention_dim=256, pooled_projection_dim=128, axes_dims_rope=[16, 56, 56])


class TimingRun:
    def __init__(self, steps=20, tokens=1024, seed=0):
        import numpy as np
        import paddle

        from ..models import FluxTransformer2DModel
        from ..pipelines.flux import FluxPipeline
        from ..pipelines.flow_match_scheduler import FlowMatchEulerDiscreteScheduler, calculate_shift

        paddle.seed(seed)
        self.model = FluxTransformer2DModel(**TIMING_MODEL).eval()
        self.side = int(tokens**0.5)
        self.steps = steps
        scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
        scheduler.set_timesteps(steps, sigmas=np.linspace(1.0, 1.0 / steps, steps),
                                mu=calculate_shift(self.side * self.side))  # FLUX's schedule
        self.timesteps, self.sigmas = scheduler.timesteps_host, scheduler.sigmas.numpy()
        self.x0 = paddle.randn([1, self.side * self.side, TIMING_MODEL["in_channels"]])
        self.text = paddle.randn([1, 64, TIMING_MODEL["joint_attention_dim"]])
        self.pooled = paddle.randn([1, TIMING_MODEL["pooled_projection_dim"]])
        self.image_ids = FluxPipeline.latent_image_ids(self.side, self.side, "float32")
        self.text_ids = paddle.zeros([64, 3])

    def generate(self, cached):
        """(seconds, final latents as numpy); `cached` opens an explicit generation context for the engine."""
        import contextlib

        import paddle

        import ppcache

        x = self.x0
        start = time.perf_counter()
        context = ppcache.generation(self.model, self.steps, self.timesteps) if cached else contextlib.nullcontext()
        with paddle.no_grad(), context as gen:
            for i, t in enumerate(self.timesteps):
                if gen is not None:
                    gen.step(i, t)
                v = self.model(x, self.text, self.pooled, paddle.to_tensor([t / 1000]), self.image_ids,
                               self.text_ids, return_dict=False)[0]
                x = x + float(self.sigmas[i + 1] - self.sigmas[i]) * v
            result = x.numpy()  # waits for the result
        return time.perf_counter() - start, result

    def compare(self, config, repeats=3):
        """(median stock seconds, median cached seconds, compute fraction) of `config`: stock and cached
        generations interleaved `repeats` times."""
        import statistics

        import ppcache

        stock, cached = [], []
        for _ in range(repeats):
            ppcache.remove_cache(self.model)
            stock.append(self.generate(False)[0])
            ppcache.apply_cache(self.model, config)
            cached.append(self.generate(True)[0])
        fraction = ppcache.summary(self.model)["compute_fraction"]
        ppcache.remove_cache(self.model)
        return statistics.median(stock), statistics.median(cached), fraction
