"""The asset cache: content-addressed binary assets with expiry, a byte budget and LRU eviction."""

from egregora.assets.cache import Asset, AssetCache, CacheStats, Evicted, KindStats, NewAsset
from egregora.assets.keys import key_for, kind_of

__all__ = [
    "Asset",
    "AssetCache",
    "CacheStats",
    "Evicted",
    "KindStats",
    "NewAsset",
    "key_for",
    "kind_of",
]
