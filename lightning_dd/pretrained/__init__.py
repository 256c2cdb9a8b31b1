"""Pretrained helpers stored on one file format base (:class:`PoolFile`): proxy pools (CMI/IID) and MTT expert
buffers (one shard file per expert)."""

from lightning_dd.pretrained.experts import EXPERT_RECIPE, ExpertBuffer, expert_path, load_expert_buffer, train_experts
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
    "EXPERT_RECIPE",
    "HEADER_FIELDS",
    "PRETRAIN_RECIPES",
    "ExpertBuffer",
    "PoolFile",
    "PretrainRecipe",
    "ProxyPool",
    "device_key",
    "expert_path",
    "freeze",
    "load_expert_buffer",
    "pretrain_proxies",
    "to_proxy_input",
    "train_experts",
]
