"""DeepCache (arXiv 2312.00858, horseee/DeepCache) for PPDiffusers UNet2DConditionModel pipelines.

The deep features of a U-Net change slowly between adjacent steps. A full step (every N-th step of the generation,
counted from its first step) runs the whole UNet and stores the output of every block deeper than the skip branch;
the other steps run only the shallow down path and the matching shallow up path, and every deeper block returns
its stored output.
"""
import dataclasses

from ..engine import Prediction
from ..errors import ConfigError
from .base import MethodConfig, Policy

LAYERS_PER_BRANCH_BLOCK = 3  # block_id = cache_branch_id // 3, layer_id = cache_branch_id % 3 (methods.md §14)


@dataclasses.dataclass
class DeepCacheConfig(MethodConfig):
    """DeepCache, uniform 1:N schedule (UNet pipelines only: StableDiffusionPipeline, StableDiffusionXLPipeline).

    Attributes:
        cache_interval: N, the full-step period: step i runs the whole UNet when i mod N == 0 (i counts from the
            generation's first step, so every generation starts with a full step); N = 1 disables caching.
        cache_branch_id: the skip branch; block_id = cache_branch_id // 3 is the shallowest down block (and the
            matching up block, counted from the output end) that keeps running on the cached steps. Everything
            deeper (down blocks > block_id, the mid block, up blocks deeper than the matching one) is cached.
            0 is the shallowest branch and skips the most. ppcache works on whole blocks, so layer_id =
            cache_branch_id % 3 only selects layers inside a block in the paper; here the whole block_id down
            and up blocks run (see DeepCachePolicy), e.g. SD 1.5 / SDXL branches 0, 1, 2 all behave as 2.
        num_inference_steps / current_timestep_callback: for a UNet driven without a pipeline.
    """

    method: str = "deepcache"
    cache_interval: int = 3
    cache_branch_id: int = 0

    def validate(self, where="cache"):
        for field in ("cache_interval", "cache_branch_id"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{where}.{field} must be int, got {value!r} ({type(value).__name__})")
        if self.cache_interval < 1:
            raise ConfigError(f"{where}.cache_interval must be >= 1 (1 runs every step in full), "
                              f"got {self.cache_interval}")
        if self.cache_branch_id < 0:
            raise ConfigError(f"{where}.cache_branch_id must be >= 0, got {self.cache_branch_id}")


class DeepCachePolicy(Policy):
    """Uniform DeepCache at block granularity.

    Engine blocks of a UNet with D down and U = D up blocks: down 0..D-1, mid (index D), up 0..U-1 (index D+1+j).
    With block_id b = cache_branch_id // 3, the cached (deep) blocks are down b+1..D-1, the mid block and up
    blocks 0..U-2-b, i.e. engine indices b+1 .. D+U-1-b: on a cached step down 0..b and up U-1-b..U-1 run.
    E.g. SD 1.5 (D = 4): branches 0-2 run down 0 and up 3; branches 3-5 run down 0-1 and up 2-3; 9-11 cache
    only the mid block.

    Deviation from the paper and methods.md §14: the reference skips at layer granularity inside the branch
    block (down layers >= layer_id and up layers, from the output end, > layer_id are cached). Block wrappers
    cannot stop a block half-way, so here the branch's down and up blocks always run in full. This is exact
    when layer_id >= (resnets of that up block) - 1, i.e. branch 3b + 2 on SD 1.5 / SDXL (up blocks with 3
    resnets), except that the branch down block's downsampler (whose output only feeds cached blocks) still
    runs. A smaller layer_id computes more than the paper (better fidelity, less speed-up); a one-time warning
    says so. Also unlike the reference, the step phase comes from the generation context (i0 = 0 for every
    generation), not from a timestep lookup or an offset captured when the cache was enabled.
    """

    name = "deepcache"
    supported_families = ("unet",)

    def bind(self, engine):
        super().bind(engine)
        num_down, mid_index, num_up = self.adapter.layout()
        block_id, layer_id = divmod(self.config.cache_branch_id, LAYERS_PER_BRANCH_BLOCK)
        if block_id >= min(num_down, num_up):
            highest = LAYERS_PER_BRANCH_BLOCK * min(num_down, num_up) - 1
            raise ConfigError(f"cache.cache_branch_id {self.config.cache_branch_id} selects block "
                              f"{block_id}, but this UNet has {num_down} down blocks: use 0..{highest}")
        first = block_id + 1
        last = len(self.blocks) - 1 - (block_id + 1)  # the up block just deeper than the branch's up block
        self.deep = frozenset(range(first, last + 1))
        up_resnets = len(self.adapter.up_blocks[num_up - 1 - block_id].resnets)
        if layer_id < up_resnets - 1:
            self.notice(f"DeepCache runs whole blocks: cache_branch_id {self.config.cache_branch_id} (block "
                        f"{block_id}, layer {layer_id}) computes all of down block {block_id} and up block "
                        f"{num_up - 1 - block_id}, as branch {LAYERS_PER_BRANCH_BLOCK * block_id + 2} would")
        self._full = True

    def begin_call(self, call):
        self._full = call.ctx.step % self.config.cache_interval == 0

    def decide(self, index, io, call):
        if self._full or index not in self.deep:
            return None
        cached = call.state.get(call.key("deep", index))
        if cached is None:  # nothing stored yet for this branch: compute (and store) it
            return None
        return Prediction(index, lambda streams: cached)

    def after_compute(self, index, io, outputs, call):
        if index in self.deep:
            call.state.set(call.key("deep", index), tuple(outputs))
