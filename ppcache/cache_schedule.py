"""Cache schedules (ECAD, arXiv 2506.15682): a boolean mask over step x block x component, 1 = recompute,
0 = reuse that component's last output. Stored as JSON or YAML with the model, steps and resolution it was made
for and its measured metrics; loading validates shape and names against the model."""
import json
import warnings

import numpy as np

from .errors import ConfigError


class CacheSchedule:
    """`mask[step][block]` is a dict {component: bool}; `components[block]` lists the block's component names."""

    def __init__(self, mask, components, name="schedule", config=None, metrics=None):
        self.mask = mask
        self.components = components
        self.name = name
        self.config = dict(config or {})
        self.metrics = dict(metrics or {})

    @property
    def num_steps(self):
        return len(self.mask)

    @property
    def num_blocks(self):
        return len(self.components)

    # ---- genome <-> schedule ---------------------------------------------------------------------------------
    def to_genome(self):
        """Flat 0/1 vector in step, block, component order."""
        return np.array([int(self.mask[s][b][c]) for s in range(self.num_steps) for b in range(self.num_blocks)
                         for c in self.components[b]], dtype=np.int8)

    @classmethod
    def from_genome(cls, genome, components, num_steps, **kwargs):
        genome = np.asarray(genome).astype(bool).tolist()
        per_step = sum(len(c) for c in components)
        if len(genome) != per_step * num_steps:
            raise ConfigError(f"genome has {len(genome)} bits; {num_steps} steps x {per_step} components need "
                              f"{per_step * num_steps}")
        mask, position = [], 0
        for _ in range(num_steps):
            step = []
            for names in components:
                step.append({name: genome[position + k] for k, name in enumerate(names)})
                position += len(names)
            mask.append(step)
        return cls(mask, components, **kwargs)

    @classmethod
    def full(cls, components, num_steps, **kwargs):
        """Recompute everything (the no-cache schedule)."""
        return cls.from_genome(np.ones(num_steps * sum(len(c) for c in components)), components, num_steps, **kwargs)

    def compute_fraction_of_components(self):
        genome = self.to_genome()
        return float(genome.mean()) if genome.size else 1.0

    # ---- files ---------------------------------------------------------------------------------------------
    def to_dict(self):
        return {
            "cache_schedule": {
                "name": self.name, "num_blocks": self.num_blocks, "num_inference_steps": self.num_steps,
                "components": self.components,
                "schedule": {f"{s:03d}": {str(b): dict(self.mask[s][b]) for b in range(self.num_blocks)}
                             for s in range(self.num_steps)},
            },
            "config": self.config,
            "metrics": self.metrics,
        }

    def save(self, path):
        data = self.to_dict()
        with open(path, "w") as handle:
            if path.endswith((".yaml", ".yml")):
                import yaml

                yaml.safe_dump(data, handle, sort_keys=False)
            else:
                json.dump(data, handle, indent=1)

    @classmethod
    def load(cls, path):
        try:
            with open(path) as handle:
                if path.endswith((".yaml", ".yml")):
                    import yaml

                    data = yaml.safe_load(handle)
                else:
                    data = json.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"schedule file not found: {path}") from None
        except Exception as error:  # JSON / YAML syntax errors of any kind
            raise ConfigError(f"schedule file {path} is not valid JSON/YAML: {str(error).splitlines()[0]}") from None
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data, source="schedule"):
        try:
            body = data["cache_schedule"]
            components = [list(c) for c in body["components"]]
            steps = body["schedule"]
            num_steps, num_blocks = int(body["num_inference_steps"]), int(body["num_blocks"])
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{source}: malformed schedule, missing or invalid {error}; expected cache_schedule "
                              "with components, schedule, num_inference_steps and num_blocks") from None
        if len(components) != num_blocks or len(steps) != num_steps:
            raise ConfigError(f"{source}: schedule declares {num_blocks} blocks x {num_steps} steps but holds "
                              f"{len(components)} blocks x {len(steps)} steps")
        mask = []
        for s in range(num_steps):
            entry = steps.get(f"{s:03d}")
            if not isinstance(entry, dict) or len(entry) != num_blocks:
                raise ConfigError(f"{source}: step {s:03d} is missing or does not list all {num_blocks} blocks")
            step = []
            for b in range(num_blocks):
                bits = entry.get(str(b))
                if not isinstance(bits, dict) or sorted(bits) != sorted(components[b]):
                    raise ConfigError(f"{source}: step {s:03d} block {b} must give exactly the components "
                                      f"{components[b]}")
                if not all(isinstance(v, bool) for v in bits.values()):
                    raise ConfigError(f"{source}: step {s:03d} block {b}: every component maps to true or false")
                step.append(dict(bits))
            mask.append(step)
        return cls(mask, components, body.get("name", "schedule"), data.get("config"), data.get("metrics"))

    # ---- use -----------------------------------------------------------------------------------------------
    def check_model(self, components, source="schedule"):
        """Raises ConfigError unless the schedule's blocks and component names match the model's."""
        if [list(c) for c in components] != self.components:
            raise ConfigError(f"{source} was made for {self.num_blocks} blocks with components "
                              f"{_summarise(self.components)}; this model has {len(components)} blocks with "
                              f"{_summarise(components)}: search a schedule for this model with tools/search_schedule.py")

    def recompute(self, step, block, component, num_steps=None):
        """The bit for a step of a run with `num_steps` steps, remapped by relative position if they differ."""
        if num_steps is not None and num_steps != self.num_steps:
            step = int(round(step * (self.num_steps - 1) / max(1, num_steps - 1)))
        return self.mask[min(step, self.num_steps - 1)][block][component]


def _summarise(components):
    kinds = []
    for names in components:
        if not kinds or kinds[-1][0] != names:
            kinds.append([names, 0])
        kinds[-1][1] += 1
    return ", ".join(f"{n} x {names}" for names, n in kinds)


def warn_remap(schedule_steps, run_steps):
    warnings.warn(f"cache schedule made for {schedule_steps} steps is remapped by relative position to "
                  f"{run_steps} steps", stacklevel=3)


__all__ = ["CacheSchedule", "warn_remap"]
