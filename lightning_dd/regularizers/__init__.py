"""Plug-in regularizers for every distillation method (CMI, IID) and the hook that adds them."""

from lightning_dd.regularizers.base import (
    VIEW_AUGMENTED,
    VIEW_FEATURE_MAPS,
    RegularizationMixin,
    Regularizer,
    RegularizerContext,
)
from lightning_dd.regularizers.cmi import CMIRegularizer
from lightning_dd.regularizers.iid import IIDRegularizer
from lightning_dd.regularizers.proxied import ProxyRegularizer

__all__ = [
    "VIEW_AUGMENTED",
    "VIEW_FEATURE_MAPS",
    "CMIRegularizer",
    "IIDRegularizer",
    "ProxyRegularizer",
    "RegularizationMixin",
    "Regularizer",
    "RegularizerContext",
]
