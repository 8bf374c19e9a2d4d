"""Cache methods: each is a config dataclass plus a Policy; registered here by name."""
from ..config import register_method
from .blockdance import BlockDanceConfig, BlockDancePolicy
from .dbcache import DBCacheConfig, DBCachePolicy
from .deepcache import DeepCacheConfig, DeepCachePolicy
from .easycache import EasyCacheConfig, EasyCachePolicy
from .firstblock_taylor import FirstBlockTaylorConfig, FirstBlockTaylorPolicy
from .fora import FORAConfig, FORAPolicy
from .magcache import MagCacheConfig, MagCachePolicy
from .pab import PABConfig, PABPolicy
from .schedule import ScheduleConfig, SchedulePolicy
from .sortblock import SortBlockConfig, SortBlockPolicy
from .teablockcache import TeaBlockCacheConfig, TeaBlockCachePolicy
from .taylorseer import TaylorSeerConfig, TaylorSeerPolicy
from .teacache import TeaCacheConfig, TeaCachePolicy
from .tgate import TGateConfig, TGatePolicy

POLICIES = {
    "sortblock": (SortBlockConfig, SortBlockPolicy),
    "teablockcache": (TeaBlockCacheConfig, TeaBlockCachePolicy),
    "firstblock_taylor": (FirstBlockTaylorConfig, FirstBlockTaylorPolicy),
    "teacache": (TeaCacheConfig, TeaCachePolicy),
    "magcache": (MagCacheConfig, MagCachePolicy),
    "easycache": (EasyCacheConfig, EasyCachePolicy),
    "dbcache": (DBCacheConfig, DBCachePolicy),
    "blockdance": (BlockDanceConfig, BlockDancePolicy),
    "taylorseer": (TaylorSeerConfig, TaylorSeerPolicy),
    "fora": (FORAConfig, FORAPolicy),
    "pab": (PABConfig, PABPolicy),
    "tgate": (TGateConfig, TGatePolicy),
    "schedule": (ScheduleConfig, SchedulePolicy),
    "deepcache": (DeepCacheConfig, DeepCachePolicy),
}

for _name, (_config, _policy) in POLICIES.items():
    register_method(_name, _config)


def policy_for(config):
    for config_class, policy_class in POLICIES.values():
        if isinstance(config, config_class):
            return policy_class(config)
    raise TypeError(f"no cache policy for {type(config).__name__}")


__all__ = ["POLICIES", "policy_for", "SortBlockConfig", "TeaBlockCacheConfig", "FirstBlockTaylorConfig",
           "TeaCacheConfig", "DBCacheConfig", "BlockDanceConfig", "TaylorSeerConfig", "FORAConfig", "PABConfig",
           "TGateConfig", "ScheduleConfig", "DeepCacheConfig", "MagCacheConfig", "EasyCacheConfig"]
