"""The benchmark run: every variant (cache config or fewer-steps baseline) on every (prompt, seed) case, against
the uncached reference of that case.

Each rank runs `Benchmark.run()` on its share (cases by position for images, variants by position for timings)
and writes one file per result (ppcache.bench.store); what is already on disk is skipped, so an interrupted
run resumes. Rank 0 then calls `merge()`, which waits for every file and returns one row per variant.
"""
import dataclasses

from ..api import apply_cache, remove_cache, summary
from .evaluate import sample
from .metrics import psnr, ssim, temporal_ssim
from . import store as files
from .plots import FEWER_STEPS
from .report import summarize
from .rank_shards import shard, wait_for

FEWER_STEPS_FRACTIONS = (0.25, 0.35, 0.45, 0.5, 0.6, 0.7, 0.8)


@dataclasses.dataclass
class Variant:
    """One benchmarked setting: a cache config (`cache`) at the full step count, or the stock model (`cache`
    None) at fewer steps."""

    name: str
    method: str
    steps: int
    cache: object = None

    def describe(self):
        return None if self.cache is None else dataclasses.asdict(self.cache)


def fewer_steps(steps, fractions=FEWER_STEPS_FRACTIONS):
    """The no-cache baseline: the stock model at these fractions of `steps` (compute fraction k / steps)."""
    counts = sorted({max(1, round(steps * f)) for f in fractions} - {steps})
    return [Variant(f"{k}/{steps} steps", FEWER_STEPS, k) for k in counts]


def cache_variants(named_configs, steps):
    """[(name, PPCacheConfig)] -> variants; configs without a cache (method none) are the reference itself."""
    return [Variant(name, config.cache.method, steps, config.cache)
            for name, config in named_configs if config.cache.method != "none"]


class SilentBar:
    """Stands in for a progress bar when none is shown."""

    def update(self, n=1):
        pass


class Benchmark:
    def __init__(self, pipe, store, variants, cases, steps, height=32, width=32, repeats=3, rank=0, world=1,
                 sheet_cases=4, overhead_tokens=None, progress=False):
        self.pipe, self.store, self.variants, self.cases = pipe, store, list(variants), list(cases)
        self.steps, self.height, self.width, self.repeats = steps, height, width, repeats
        self.rank, self.world, self.sheet_cases = rank, world, sheet_cases
        self.overhead_tokens, self.progress = overhead_tokens, progress
        self._step_cost = self._timing_run = None
        self.bar = SilentBar()  # run() replaces it with its progress bar; a caller may set its own

    # ---- where results live -------------------------------------------------------------------------------
    def _timing_path(self, variant):
        return self.store.timing(variant, "timing", self.steps, self.repeats, self.cases[0])

    def _overhead_path(self, variant):
        return self.store.timing(variant, "overhead", self.steps, self.repeats, self.overhead_tokens)

    def _needs_overhead(self, variant):
        return bool(self.overhead_tokens) and variant.cache is not None

    # ---- this rank's share --------------------------------------------------------------------------------
    def run(self):
        from tqdm.auto import tqdm

        mine = shard(range(len(self.cases)), self.rank, self.world)
        timed = shard(range(len(self.variants)), self.rank, self.world)
        total = (len(mine) * (1 + len(self.variants)) + len(timed) * self.repeats
                 + sum(self._needs_overhead(self.variants[i]) for i in timed))
        desc = "benchmark" if self.world == 1 else f"benchmark (rank {self.rank} of {self.world})"
        with tqdm(total=total, desc=desc, disable=not self.progress, dynamic_ncols=True) as self.bar:
            for i in mine:
                self.reference(i)
                self.bar.update()
            for index, variant in enumerate(self.variants):
                self._measure(variant, mine)
                if index in timed:
                    self._time(variant)
                    if self._needs_overhead(variant):
                        self._overhead(variant)

    def reference(self, index):
        """The uncached image of case `index`, generated once and kept under refs/."""
        prompt, seed = self.cases[index]
        path = self.store.reference(prompt, seed, self.steps)
        if self.store.exists(path):
            return files.read_image(path)
        remove_cache(self.pipe)
        image = sample(self.pipe, prompt, seed, self.steps, self.height, self.width)[0]
        files.write_image(path, image)
        return image

    def records(self, variant, indices, timeout=None):
        """The per-case records of `variant` on cases `indices`, without timings: this rank measures its share
        of them (what is on disk is skipped), then waits (quietly: a caller's loop calls this often) for the other
        ranks' files."""
        self._measure(variant, shard(indices, self.rank, self.world))
        paths = [self.store.record(variant, self.cases[i]) for i in indices]
        wait_for(paths, timeout)
        return [files.read_json(path) for path in paths]

    def _measure(self, variant, indices):
        todo = [i for i in indices if not self.store.exists(self.store.record(variant, self.cases[i]))]
        self.bar.update(len(indices) - len(todo))
        if not todo:
            return
        if variant.cache is None:
            self.step_cost()
        references = {i: self.reference(i) for i in todo}
        try:
            apply_cache(self.pipe, variant.cache) if variant.cache is not None else remove_cache(self.pipe)
            for i in todo:
                prompt, seed = self.cases[i]
                image = sample(self.pipe, prompt, seed, variant.steps, self.height, self.width)[0]
                record = self._record(variant, image, references[i])
                if i < self.sheet_cases:  # the image first: a record on disk means its image is there too
                    files.write_image(self.store.record(variant, self.cases[i], ".npy"), image)
                files.write_json(self.store.record(variant, self.cases[i]), record)
                self.bar.update()
        finally:
            remove_cache(self.pipe)

    def _record(self, variant, image, reference):
        quality = dict(ssim=ssim(image, reference), psnr=min(psnr(image, reference), 100.0))
        if image.ndim == 4:  # a video: also how its frame-to-frame motion matches the reference's
            quality["temporal_ssim"] = temporal_ssim(image, reference)
        if variant.cache is None:
            macs, blocks = self.step_cost()
            return dict(quality, compute_fraction=variant.steps / self.steps, macs=variant.steps * macs,
                        cache_bytes=0, steps_computed=variant.steps, blocks_computed=variant.steps * blocks,
                        blocks_predicted=0, fallbacks=0)
        stats = summary(self.pipe)
        return dict(quality, compute_fraction=stats["compute_fraction"], macs=stats["macs_run"],
                    cache_bytes=stats["cache_bytes"], steps_computed=stats["full_steps"],
                    blocks_computed=stats["blocks_computed"], blocks_predicted=stats["blocks_predicted"],
                    fallbacks=stats["fallbacks"])

    def calibration(self, kind, index=0):
        """A method's calibration of the model (ppcache.bench.calibration.CALIBRATIONS[kind]) measured on case
        `index`, once: what is on disk is read back."""
        path = self.store.calibration(kind, self.cases[index], self.steps)
        if self.store.exists(path):
            return files.read_json(path)
        from .calibration import CALIBRATIONS

        remove_cache(self.pipe)
        data = CALIBRATIONS[kind](self.pipe, [self.cases[index]], self.steps, self.height, self.width)
        files.write_json(path, data)
        return data

    def step_cost(self):
        """(block MACs, block calls) of one full denoising step, counted by the engine on a one-step run."""
        if self._step_cost is None:
            from ..policies import SortBlockConfig

            probe = next((v.cache for v in self.variants if v.cache is not None), None) or SortBlockConfig()
            prompt, seed = self.cases[0]
            apply_cache(self.pipe, probe)
            try:
                sample(self.pipe, prompt, seed, 1, self.height, self.width)
                stats = summary(self.pipe)
            finally:
                remove_cache(self.pipe)
            self._step_cost = (stats["macs_full"], stats["blocks_computed"] + stats["blocks_predicted"])
        return self._step_cost

    def _time(self, variant):
        """Uncached and cached generations of the first case, interleaved `repeats` times."""
        path = self._timing_path(variant)
        if self.store.exists(path):
            self.bar.update(self.repeats)
            return
        prompt, seed = self.cases[0]
        uncached, cached = [], []
        try:
            for _ in range(self.repeats):
                remove_cache(self.pipe)
                uncached.append(sample(self.pipe, prompt, seed, self.steps, self.height, self.width)[1])
                if variant.cache is not None:
                    apply_cache(self.pipe, variant.cache)
                cached.append(sample(self.pipe, prompt, seed, variant.steps, self.height, self.width)[1])
                self.bar.update()
        finally:
            remove_cache(self.pipe)
        files.write_json(path, dict(uncached_s=uncached, cached_s=cached, prompt=prompt, seed=seed))

    def _overhead(self, variant):
        """Stock vs cached time and compute fraction on the FLUX-shaped timing model (ppcache.bench.timing_model)."""
        path = self._overhead_path(variant)
        if not self.store.exists(path):
            from .timing_model import TimingRun

            if self._timing_run is None:
                self._timing_run = TimingRun(self.steps, self.overhead_tokens)
                self._timing_run.generate(False)  # warm-up
            stock, cached, fraction = self._timing_run.compare(variant.cache, self.repeats)
            files.write_json(path, dict(stock_s=stock, cached_s=cached, compute_fraction=fraction,
                                        tokens=self.overhead_tokens))
        self.bar.update()

    # ---- rank 0 -------------------------------------------------------------------------------------------
    def merge(self, timeout=None):
        """One row per variant over all cases, once every rank's files are there."""
        paths = [self.store.record(v, c) for v in self.variants for c in self.cases]
        paths += [self._timing_path(v) for v in self.variants]
        paths += [self._overhead_path(v) for v in self.variants if self._needs_overhead(v)]
        wait_for(paths, timeout, report=lambda n: print(f"waiting for {n} results from the other ranks", flush=True))
        rows = []
        for v in self.variants:
            records = [files.read_json(self.store.record(v, c)) for c in self.cases]
            overhead = files.read_json(self._overhead_path(v)) if self._needs_overhead(v) else None
            rows.append(summarize(v.name, v.method, v.steps, records, files.read_json(self._timing_path(v)), overhead))
        return rows

    def references(self):
        return [self.reference(i) for i in range(len(self.cases))]

    def sheet(self):
        """(reference images, [(variant name, images)], labels) of the contact-sheet cases."""
        indices = range(min(self.sheet_cases, len(self.cases)))
        columns = [(v.name, [files.read_image(self.store.record(v, self.cases[i], ".npy")) for i in indices])
                   for v in self.variants]
        labels = [f"{self.cases[i][0][:40]} (seed {self.cases[i][1]})" for i in indices]
        return [self.reference(i) for i in indices], columns, labels
