"""The scheduler as its callers see it, before, with and after apply_cache, on the installed PPDiffusers' own
pipeline (run in a subprocess with PPDiffusers from source first on the import path). Prints one JSON object."""
import inspect
import json
import sys

import ppcache
from ppcache.config import resolve_model_path
from ppcache.pipelines.loading import load_pipeline


def view(scheduler):
    return {name: str(inspect.signature(getattr(scheduler, name))) for name in ("set_timesteps", "step")}


pipe = load_pipeline(resolve_model_path(sys.argv[1]), pipeline="ppdiffusers")
scheduler = pipe.scheduler
before = view(scheduler)
instance_before = sorted(k for k in ("set_timesteps", "step") if k in scheduler.__dict__)
ppcache.apply_cache(pipe, "configs/fbcache.yaml")
during = view(scheduler)
result = scheduler.set_timesteps(4, mu=0.5) if "mu" in before["set_timesteps"] else scheduler.set_timesteps(4)
ppcache.remove_cache(pipe)
print(json.dumps({"before": before, "during": during, "after": view(scheduler), "set_timesteps_returns": repr(result),
                  "instance_before": instance_before,
                  "instance_after": sorted(k for k in ("set_timesteps", "step") if k in scheduler.__dict__),
                  "scheduler_class": f"{type(scheduler).__module__}.{type(scheduler).__name__}"}))
