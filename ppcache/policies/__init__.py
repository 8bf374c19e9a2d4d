"""Cache methods: each is a config dataclass plus a Policy; registered here by name."""
from ..config import register_method
from .blockdance import BlockDanceConfig, BlockDancePolicy
from .dbcache import DBCacheConfig, DBCachePolicy
from .firstblock_taylor import FirstBlockTaylorConfig, FirstBlockTaylorPolicy
from .sortblock import SortBlockConfig, SortBlockPolicy
from .teablockcache import TeaBlockCacheConfig, TeaBlockCachePolicy
from .teacache import TeaCacheConfig, TeaCachePolicy

POLICIES = {
    "sortblock": (SortBlockConfig, SortBlockPolicy),
    "teablockcache": (TeaBlockCacheConfig, TeaBlockCachePolicy),
    "firstblock_taylor": (FirstBlockTaylorConfig, FirstBlockTaylorPolicy),
    "teacache": (TeaCacheConfig, TeaCachePolicy),
    "dbcache": (DBCacheConfig, DBCachePolicy),
    "blockdance": (BlockDanceConfig, BlockDancePolicy),
}

for _name, (_config, _policy) in POLICIES.items():
    register_method(_name, _config)


def policy_for(config):
    for config_class, policy_class in POLICIES.values():
        if isinstance(config, config_class):
            return policy_class(config)
    raise TypeError(f"no cache policy for {type(config).__name__}")


__all__ = ["POLICIES", "policy_for", "SortBlockConfig", "TeaBlockCacheConfig", "FirstBlockTaylorConfig",
           "TeaCacheConfig", "DBCacheConfig", "BlockDanceConfig"]
