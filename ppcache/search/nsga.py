"""ECAD search (arXiv 2506.15682): NSGA-II over binary cache-schedule genomes, in pymoo's ask/tell form.

A genome holds one bit per (step, block, component), 1 = recompute (see `ppcache.cache_schedule.CacheSchedule`). Both
objectives are minimised: F1 = 1 - quality (default: mean SSIM against the uncached image on calibration prompts),
F2 = cost (compute fraction or MACs of the run). One inequality constraint, 1 - (bits differing from all-ones) <= 0,
excludes the no-cache genome. The search checkpoints after every generation (the pickled algorithm, whose seeded
random generator travels with it, the generation count and the history of fronts) and resumes from it; a resumed
run produces the same next generation as an uninterrupted one.
"""
import copy
import dataclasses
import os
import pickle
import tempfile
from typing import List, Optional

import numpy as np

from ..config import DEFAULT_RESOLUTION
from ..errors import ConfigError

CHECKPOINT_VERSION = 1


# ---- heuristic seeds ------------------------------------------------------------------------------------------
def _is_attention(name):
    return "attn" in name or "attention" in name


def _genome(components, num_steps, bit):
    """Genome from `bit(step, block, component_name) -> bool`, in CacheSchedule.to_genome order."""
    return np.array([int(bool(bit(s, b, c))) for s in range(num_steps) for b in range(len(components))
                     for c in components[b]], dtype=np.int8)


def fora_genome(components, num_steps, interval):
    """FORA-like: recompute everything every `interval` steps (from step 0), reuse everything in between."""
    return _genome(components, num_steps, lambda s, b, c: s % interval == 0)


def attention_every_genome(components, num_steps, interval):
    """SortBlock-like / attention-only: attention recomputed every `interval` steps, other components always."""
    return _genome(components, num_steps, lambda s, b, c: not _is_attention(c) or s % interval == 0)


def tgate_genome(components, num_steps, gate_step):
    """T-GATE-like: attention recomputed before `gate_step`, reused from then on; other components always."""
    return _genome(components, num_steps, lambda s, b, c: not _is_attention(c) or s < gate_step)


def random_genome(components, num_steps, rng, keep=None):
    """Random bits (recompute probability `keep`, drawn in [0.3, 0.9] when None); step 0 computes everything."""
    keep = rng.uniform(0.3, 0.9) if keep is None else keep
    per_step = sum(len(c) for c in components)
    genome = (rng.random(num_steps * per_step) < keep).astype(np.int8)
    genome[:per_step] = 1
    return genome


def heuristic_seeds(components, num_steps, size, seed=0, kinds=("fora", "attention", "tgate", "random")):
    """`size` distinct genomes (rows), none all-ones: FORA-like every 2, 3, ..., attention every 2, 3, ...,
    T-GATE gates at 1/2, 3/4, 1/4 of the steps (those named in `kinds`), interleaved, then random genomes to
    fill up."""
    rng = np.random.default_rng(seed)
    queues = []
    if "fora" in kinds:
        queues.append([fora_genome(components, num_steps, n) for n in range(2, max(3, num_steps))])
    if "attention" in kinds:
        queues.append([attention_every_genome(components, num_steps, n) for n in range(2, max(3, num_steps))])
    if "tgate" in kinds:
        gates = [num_steps // 2, (3 * num_steps) // 4, num_steps // 4]
        queues.append([tgate_genome(components, num_steps, g) for g in dict.fromkeys(max(1, g) for g in gates)])
    rows, seen = [], set()

    def add(genome):
        key = genome.tobytes()
        if genome.all() or key in seen:
            return
        seen.add(key)
        rows.append(genome)

    while len(rows) < size and any(queues):
        for queue in queues:
            if queue and len(rows) < size:
                add(queue.pop(0))
    attempts = 0
    while len(rows) < size and attempts < 100 * size:
        attempts += 1
        add(random_genome(components, num_steps, rng))
    per_step = sum(len(c) for c in components)
    if not rows:
        return np.zeros((0, per_step * num_steps), dtype=np.int8)
    return np.stack(rows[:size])


def no_cache_constraint(X):
    """G <= 0 is feasible: 1 - (number of bits differing from all-ones), so only the all-ones genome fails."""
    X = np.atleast_2d(np.asarray(X, dtype=np.int64))
    return (1 - (X.shape[1] - X.sum(axis=1))).astype(float)


# ---- candidate evaluation ----------------------------------------------------------------------------------
def evaluate_candidates(X, evaluate, rank=0, world_size=1):
    """Objectives of the rows `i` with `i % world_size == rank`: {i: (f1, f2)}. `evaluate(genome)` returns
    (quality, cost); f1 = 1 - quality, f2 = cost. Merging the shards ({**a, **b}) is left to the caller."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    results = {}
    for i in range(rank, len(X), world_size):
        quality, cost = evaluate(np.asarray(X[i]).astype(np.int8))
        results[i] = (1.0 - float(quality), float(cost))
    return results


def objectives_from_shards(shards, n):
    merged = {}
    for shard in shards:
        merged.update(shard)
    missing = [i for i in range(n) if i not in merged]
    if missing:
        raise ValueError(f"candidates {missing} were evaluated by no shard")
    return np.array([merged[i] for i in range(n)], dtype=float)


class PipelineObjective:
    """Default objective for a pipeline: runs the schedule through `ScheduleConfig` (written to a temp file) on
    the calibration (prompt, seed) cases and returns (quality, cost).

    quality: callable(images, references) -> float; default mean SSIM against the uncached images.
    cost: "compute_fraction" (MACs run / MACs of the uncached run, as measured) or "macs" (MACs run, summed).
    """

    def __init__(self, pipe, components, cases, steps, quality=None, cost="compute_fraction", height=DEFAULT_RESOLUTION,
                 width=DEFAULT_RESOLUTION):
        from ..bench.evaluate import references

        if cost not in ("compute_fraction", "macs"):
            raise ConfigError(f"cost must be compute_fraction or macs, got {cost!r}")
        self.pipe, self.components, self.cases, self.steps = pipe, components, list(cases), steps
        self.quality = quality or _mean_ssim
        self.cost, self.height, self.width = cost, height, width
        self.records = {}  # genome bytes -> {"quality", "compute_fraction", "macs_run"} of evaluated genomes
        self.references = [image for image, _ in references(pipe, self.cases, steps, height, width)]

    def schedule(self, genome, name="candidate"):
        from ..cache_schedule import CacheSchedule

        return CacheSchedule.from_genome(genome, self.components, self.steps, name=name,
                                         config={"height": self.height, "width": self.width})

    def __call__(self, genome):
        from .. import ScheduleConfig
        from ..bench.evaluate import cached_samples

        handle, path = tempfile.mkstemp(suffix=".json", prefix="ppcache_schedule_")
        os.close(handle)
        try:
            self.schedule(genome).save(path)
            runs = cached_samples(self.pipe, ScheduleConfig(path=path), self.cases, self.steps, self.height,
                                  self.width)
        finally:
            os.remove(path)
        images = [image for image, _, _ in runs]
        macs_run = sum(stats["macs_run"] for _, stats, _ in runs)
        quality = float(self.quality(images, self.references))
        fraction = float(np.mean([stats["compute_fraction"] for _, stats, _ in runs]))
        self.records[np.asarray(genome, dtype=np.int8).tobytes()] = {
            "quality": quality, "compute_fraction": fraction, "macs_run": int(macs_run)}
        return quality, (fraction if self.cost == "compute_fraction" else float(macs_run))


def _mean_ssim(images, refs):
    from ..bench.metrics import ssim

    return float(np.mean([ssim(a, r) for a, r in zip(images, refs)]))


def model_components(pipe):
    from ..adapters import adapter_for

    adapter = adapter_for(pipe.transformer)
    return [list(adapter.components(slot[2])) for slot in adapter.block_slots()]


# ---- NSGA-II ---------------------------------------------------------------------------------------------
def _problem(n_var):
    from pymoo.core.problem import Problem

    return Problem(n_var=n_var, n_obj=2, n_ieq_constr=1, xl=0, xu=1, vtype=bool)


class NSGASearch:
    """NSGA-II over `n_var` bits. `evaluate(X) -> F` (rows: (1 - quality, cost)) is given to `step` / `run`, so
    the pickled checkpoint holds no model. `initial`: seed genomes (rows), topped up with random bits."""

    def __init__(self, n_var, population=8, generations=2, mutation=0.05, crossover_points=4, crossover_prob=0.9,
                 seed=0, initial=None, checkpoint=None):
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.operators.crossover.pntx import PointCrossover
        from pymoo.operators.mutation.bitflip import BitflipMutation

        if population < 2:
            raise ConfigError(f"population must be at least 2, got {population}")
        if not 1 <= crossover_points < n_var:
            raise ConfigError(f"crossover_points must be between 1 and {n_var - 1}, got {crossover_points}")
        rng = np.random.default_rng(seed)
        rows = [] if initial is None else [np.asarray(r, dtype=bool) for r in np.atleast_2d(initial)][:population]
        while len(rows) < population:
            row = rng.random(n_var) < 0.5
            if not row.all():
                rows.append(row)
        self.n_var, self.generations, self.seed = n_var, generations, seed
        self.checkpoint = checkpoint
        self.generation = 0
        self.history = []  # per generation: {"generation", "X", "F"} of the non-dominated feasible front
        self.algorithm = NSGA2(pop_size=population, sampling=np.stack(rows), crossover=PointCrossover(
            n_points=crossover_points, prob=crossover_prob), mutation=BitflipMutation(prob=1.0, prob_var=mutation),
            eliminate_duplicates=True)
        self.algorithm.setup(_problem(n_var), termination=("n_gen", generations), seed=seed, verbose=False)

    @property
    def done(self):
        return self.generation >= self.generations

    def ask(self):
        """The next generation's genomes (rows of 0/1), without evaluating them."""
        self._pending = self.algorithm.ask()
        return self._pending.get("X").astype(np.int8)

    def tell(self, F):
        from pymoo.core.evaluator import Evaluator
        from pymoo.problems.static import StaticProblem

        pop = self._pending
        X = pop.get("X").astype(np.int8)
        F = np.asarray(F, dtype=float).reshape(len(X), 2)
        G = no_cache_constraint(X).reshape(-1, 1)
        Evaluator().eval(StaticProblem(self.algorithm.problem, F=F, G=G), pop)
        self.algorithm.tell(infills=pop)
        self._pending = None
        self.generation += 1
        X_front, F_front = self.front()
        self.history.append({"generation": self.generation, "X": X_front, "F": F_front})
        if self.checkpoint:
            self.save(self.checkpoint)
        return X_front, F_front

    def step(self, evaluate):
        """One generation: ask, evaluate (`evaluate(X) -> F`), tell, checkpoint. Returns the current front."""
        X = self.ask()
        return self.tell(evaluate(X))

    def run(self, evaluate, callback=None):
        while not self.done:
            X_front, F_front = self.step(evaluate)
            if callback is not None:
                callback(self, X_front, F_front)
        return self.front()

    def front(self):
        """Feasible non-dominated genomes and objectives, sorted by cost."""
        opt = self.algorithm.opt
        if opt is None or len(opt) == 0:
            return np.zeros((0, self.n_var), dtype=np.int8), np.zeros((0, 2))
        X, F, G = opt.get("X").astype(np.int8), opt.get("F"), opt.get("G")
        keep = (G <= 0).all(axis=1)
        X, F = X[keep], F[keep]
        order = np.lexsort((F[:, 0], F[:, 1]))
        return X[order], F[order]

    # ---- checkpoints -------------------------------------------------------------------------------------
    def save(self, path):
        state = {"version": CHECKPOINT_VERSION, "algorithm": self.algorithm, "generation": self.generation,
                 "generations": self.generations, "history": self.history, "n_var": self.n_var, "seed": self.seed}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as handle:
            pickle.dump(state, handle)
        os.replace(tmp, path)

    @classmethod
    def resume(cls, path, checkpoint=None, generations=None):
        """Loads a checkpoint; `generations` extends (or shortens) the run length."""
        try:
            with open(path, "rb") as handle:
                state = pickle.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"search checkpoint not found: {path}") from None
        if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
            raise ConfigError(f"{path} is not a ppcache search checkpoint (version {CHECKPOINT_VERSION})")
        search = cls.__new__(cls)
        search.algorithm = state["algorithm"]
        search.generation, search.generations = state["generation"], state["generations"]
        search.history, search.n_var, search.seed = state["history"], state["n_var"], state["seed"]
        search.checkpoint = path if checkpoint is None else checkpoint
        search._pending = None
        if generations is not None:
            search.generations = generations
            search.algorithm.termination = copy.deepcopy(search.algorithm.termination)
            search.algorithm.termination.n_max_gen = generations
        return search


def evaluator(objective, rank=0, world_size=1):
    """`evaluate(X) -> F` for NSGASearch from a genome -> (quality, cost) callable, run on one shard only when
    world_size is 1 (otherwise merge shards from evaluate_candidates yourself)."""
    def evaluate(X):
        return objectives_from_shards([evaluate_candidates(X, objective, rank, world_size)], len(X))

    return evaluate


def hypervolume(F, ref=(1.0, 1.0)):
    """2-D hypervolume of points F (minimised) against `ref`."""
    F = np.asarray(F, dtype=float)
    F = F[(F[:, 0] < ref[0]) & (F[:, 1] < ref[1])] if len(F) else F
    if not len(F):
        return 0.0
    # sweep along cost: each point adds the strip between its cost and the next better-quality point
    points = sorted(map(tuple, F), key=lambda p: (p[1], p[0]))
    volume, best = 0.0, ref[0]
    for i, (f1, f2) in enumerate(points):
        if f1 < best:
            volume += (best - f1) * (ref[1] - f2)
            best = f1
    return float(volume)


# ---- search YAML ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SearchConfig:
    """A schedule search (tools/search_schedule.py). Every key is optional; unknown keys are errors."""

    model: str = "tiny-flux"  # bundled name (tiny-flux, tiny-sd3, tiny-pixart, tiny-wan) or a pipeline directory
    steps: int = 10  # denoising steps; the schedule is made for exactly this many
    height: int = DEFAULT_RESOLUTION
    width: int = DEFAULT_RESOLUTION
    prompts: int = 2  # calibration prompts: the first N of the bundled prompt set
    seeds: List[int] = dataclasses.field(default_factory=lambda: [0])  # calibration seeds, each with every prompt
    population: int = 8
    generations: int = 2
    mutation: float = 0.05  # bit-flip probability per bit
    crossover_points: int = 4
    crossover_prob: float = 0.9
    seed: int = 0  # NSGA-II's random generator and the random seed genomes
    cost: str = "compute_fraction"  # second objective: compute_fraction or macs
    out: str = "outputs/ecad_search"
    min_quality: float = 0.95  # the fast / balanced / quality picks come from front members at least this good
    # run configs measured on the calibration cases beside the front (the ECAD targets); [] skips them
    compare: List[str] = dataclasses.field(default_factory=lambda: ["configs/fora.yaml", "configs/sortblock.yaml"])
    # transfer check: the picks run at another step count / resolution (null: the search's own)
    transfer_steps: Optional[int] = None
    transfer_height: Optional[int] = None
    transfer_width: Optional[int] = None
    pipeline: str = "ppcache"  # ppcache's pipeline classes, or the installed PPDiffusers' own (ppdiffusers)

    def validate(self, where):
        from ..config import _check_choice, _check_range

        _check_range(f"{where}.steps", self.steps, 1, 1000)
        _check_range(f"{where}.height", self.height, 1, 8192)
        _check_range(f"{where}.width", self.width, 1, 8192)
        _check_range(f"{where}.prompts", self.prompts, 1, 10**6)
        _check_range(f"{where}.population", self.population, 2, 10**6)
        _check_range(f"{where}.generations", self.generations, 1, 10**6)
        _check_range(f"{where}.mutation", self.mutation, 0.0, 1.0)
        _check_range(f"{where}.crossover_prob", self.crossover_prob, 0.0, 1.0)
        _check_range(f"{where}.crossover_points", self.crossover_points, 1, 10**6)
        _check_range(f"{where}.seed", self.seed, 0, 2**32 - 1)
        _check_choice(f"{where}.cost", self.cost, ("compute_fraction", "macs"))
        _check_choice(f"{where}.pipeline", self.pipeline, ("ppcache", "ppdiffusers"))
        _check_range(f"{where}.min_quality", self.min_quality, 0.0, 1.0)
        for key in ("transfer_steps", "transfer_height", "transfer_width"):
            if getattr(self, key) is not None:
                _check_range(f"{where}.{key}", getattr(self, key), 1, 8192)
        if not self.seeds:
            raise ConfigError(f"{where}.seeds must list at least one calibration seed")


def search_config_from_dict(data, source="search config"):
    from ..config import build_section

    try:
        return build_section(SearchConfig, data, "search")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def load_search_config(path):
    """Reads and validates a search YAML (flat keys of `SearchConfig`); one-line ConfigError otherwise."""
    from ..config import read_yaml

    return search_config_from_dict(read_yaml(path, "search config"), source=str(path))


def pick(F, min_quality=0.0):
    """Indices of the `fast` (lowest cost), `quality` (lowest 1 - quality) and `balanced` (lowest sum of both
    objectives, each scaled to [0, 1] over the candidates) members of a front. Only members with quality >=
    `min_quality` are candidates, unless none is."""
    F = np.asarray(F, dtype=float)
    candidates = np.flatnonzero(1 - F[:, 0] >= min_quality)
    candidates = candidates if len(candidates) else np.arange(len(F))
    G = F[candidates]
    span = np.where(np.ptp(G, axis=0) > 0, np.ptp(G, axis=0), 1.0)
    scaled = (G - G.min(axis=0)) / span
    return {"fast": int(candidates[np.lexsort((G[:, 0], G[:, 1]))[0]]),
            "balanced": int(candidates[np.argmin(scaled.sum(axis=1))]),
            "quality": int(candidates[np.lexsort((G[:, 1], G[:, 0]))[0]])}
