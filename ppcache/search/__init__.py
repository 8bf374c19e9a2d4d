"""Offline search for static cache schedules (ECAD, arXiv 2506.15682). Needs the `search` extra (pymoo)."""
from .nsga import (NSGASearch, PipelineObjective, SearchConfig, load_search_config, pick, search_config_from_dict, attention_every_genome, evaluate_candidates, evaluator,
                   fora_genome, heuristic_seeds, hypervolume, model_components, no_cache_constraint,
                   objectives_from_shards, random_genome, tgate_genome)

__all__ = ["NSGASearch", "PipelineObjective", "SearchConfig", "load_search_config", "pick", "search_config_from_dict", "attention_every_genome", "evaluate_candidates", "evaluator",
           "fora_genome", "heuristic_seeds", "hypervolume", "model_components", "no_cache_constraint",
           "objectives_from_shards", "random_genome", "tgate_genome"]
