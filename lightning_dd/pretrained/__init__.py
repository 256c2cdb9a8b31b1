"""Pretrained helpers stored as one file each: proxy pools (CMI/IID) on the :class:`PoolFile` base (MTT expert
buffers will be its second subclass)."""

from lightning_dd.pretrained.poolfile import HEADER_FIELDS, PoolFile, device_key
from lightning_dd.pretrained.proxies import (
    DEFAULT_PRETRAIN_RECIPE,
    PRETRAIN_RECIPES,
    PretrainRecipe,
    ProxyPool,
    freeze,
    pretrain_proxies,
    to_proxy_input,
)

__all__ = [
    "DEFAULT_PRETRAIN_RECIPE",
    "HEADER_FIELDS",
    "PRETRAIN_RECIPES",
    "PoolFile",
    "PretrainRecipe",
    "ProxyPool",
    "device_key",
    "freeze",
    "pretrain_proxies",
    "to_proxy_input",
]
