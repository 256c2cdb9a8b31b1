"""IID regularizers (Deng et al., CVPR 2024): class centralization (L_CC) on a pretrained proxy's features of the
augmented synthetic images, and local covariance matching (L_CM) on the matching network's last feature maps.

Official DM+IID (VincenDen/IID, methods.md §4): ``L = L_DM + 0.01 · L_CM + 0.05 · L_CC``; L_CC = sum of squared
distances to the non-detached class mean (β = 0, no exp), L_CM = squared Frobenius distance of (B, C, H·W) local
covariances normalised by B, per class, summed.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor

from lightning_dd.losses import ClassCentralizationLoss, CovarianceMatchingLoss
from lightning_dd.pretrained import ProxyPool
from lightning_dd.regularizers.base import VIEW_AUGMENTED, VIEW_FEATURE_MAPS, RegularizerContext
from lightning_dd.regularizers.proxied import ProxyRegularizer


class IIDRegularizer(ProxyRegularizer):
    """``weight_cc · L_CC + weight_cm · L_CM``; logs ``reg/iid_cc`` and ``reg/iid_cm``.

    Args:
        pool: proxy pool file for L_CC (``lightning-dd pretrain``).
        weight_cc, weight_cm: λ_CC, λ_CM (official DM: 0.05, 0.01; IDM: 0.01, 0.03).
        cc_form: ``"squared"`` (shipped code) or ``"exp"`` (the paper's exponential form, with ``beta``, ``scale``).
        every_n_steps: compute every N iterations.
    """

    needs = frozenset({VIEW_AUGMENTED, VIEW_FEATURE_MAPS})

    def __init__(
        self,
        pool: str | ProxyPool,
        weight_cc: float = 0.05,
        weight_cm: float = 0.01,
        cc_form: Literal["squared", "exp"] = "squared",
        beta: float = 0.0,
        scale: float = 0.02,
        every_n_steps: int = 1,
    ) -> None:
        super().__init__(pool, {"iid_cc": weight_cc, "iid_cm": weight_cm}, every_n_steps)
        self.cc = ClassCentralizationLoss(form=cc_form, beta=beta, scale=scale)
        self.cm = CovarianceMatchingLoss()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cc_form": self.cc.form, "beta": self.cc.beta, "scale": self.cc.scale}

    def terms(self, ctx: RegularizerContext) -> dict[str, Tensor]:
        if ctx.augmented is None or ctx.syn_feature_maps is None or ctx.real_feature_maps is None:
            raise ValueError("IIDRegularizer needs the method's augmented images and feature maps "
                             "(views 'augmented' and 'feature_maps'); this method does not provide them")
        pool = self.pool(ctx)
        proxy = self.proxy(ctx)
        embed = getattr(proxy, "embed", None)
        if not callable(embed):
            raise TypeError(f"IIDRegularizer needs proxies with an embed() method, got {type(proxy).__name__}")
        features = embed(pool.prepare_input(ctx.augmented, ctx.space, ctx.zca))
        return {
            "iid_cc": self.cc(features, ctx.labels, ctx.num_classes),
            "iid_cm": self.cm(ctx.real_feature_maps, ctx.syn_feature_maps, ctx.real_labels, ctx.labels,
                              ctx.num_classes),
        }
