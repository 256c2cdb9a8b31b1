"""Distillation methods: one LightningModule per method on the shared :class:`DistillationModule` base."""

from lightning_dd.data.protocol import RealDataSource
from lightning_dd.methods.base import DistillationModule, Views
from lightning_dd.methods.dc import DC, DSA
from lightning_dd.methods.dm import DM
from lightning_dd.methods.idc import IDC
from lightning_dd.methods.idm import IDM
from lightning_dd.methods.matching import MatchingModule
from lightning_dd.methods.mtt import MTT
from lightning_dd.methods.random import RandomSelection

__all__ = [
    "DC", "DM", "DSA", "IDC", "IDM", "MTT", "DistillationModule", "MatchingModule", "RandomSelection", "RealDataSource",
    "Views",
]
