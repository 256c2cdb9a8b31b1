"""CMI regularizer (Zhong et al., ICLR 2025): class-aware conditional mutual information of the synthetic set in a
pretrained proxy's feature space, added as ``λ · CMI`` to any method's loss.

Official behaviour (ndhg1213/CMIDD, methods.md §3): one random pretrained IN-ResNet18 per step, its 512-d
penultimate features of the whole, un-augmented synthetic set, softmax at T = 1, centroids from the synthetic set
(not detached), ``batchmean`` over the set (DM/DC/DSA) or per-class means summed (IDC). λ per dataset/IPC in the
configs.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor

from lightning_dd.losses import CMILoss
from lightning_dd.pretrained import ProxyPool
from lightning_dd.regularizers.base import VIEW_AUGMENTED, RegularizerContext
from lightning_dd.regularizers.proxied import ProxyRegularizer


class CMIRegularizer(ProxyRegularizer):
    """``weight · CMI(synthetic set)``; logs ``reg/cmi`` every computed step (also at weight 0).

    Args:
        pool: proxy pool file (``lightning-dd pretrain``).
        weight: λ (official: DM CIFAR-10 IPC10 8000, IPC50 2000; see ``configs/regularizers``).
        output: ``"features"`` (penultimate, official) or ``"logits"``.
        temperature: softmax temperature (official 1).
        reduction: ``"global"`` (mean over the set, official DM/DC/DSA) or ``"per_class"`` (IDC-style).
        augmented: use the matching step's augmented synthetic images instead of the raw ones (official: raw).
        every_n_steps: compute every N iterations (cost control).
    """

    def __init__(
        self,
        pool: str | ProxyPool,
        weight: float,
        output: Literal["features", "logits"] = "features",
        temperature: float = 1.0,
        reduction: Literal["global", "per_class"] = "global",
        augmented: bool = False,
        every_n_steps: int = 1,
    ) -> None:
        super().__init__(pool, {"cmi": weight}, every_n_steps)
        self.loss = CMILoss(output=output, temperature=temperature, reduction=reduction)
        self.use_augmented = augmented
        if augmented:
            self.needs = frozenset({VIEW_AUGMENTED})

    def describe(self) -> dict[str, Any]:
        loss = self.loss
        return {**super().describe(), "output": loss.output, "temperature": loss.temperature,
                "reduction": loss.reduction, "augmented": self.use_augmented}

    def terms(self, ctx: RegularizerContext) -> dict[str, Tensor]:
        images = ctx.augmented if self.use_augmented and ctx.augmented is not None else ctx.synthetic
        pool = self.pool(ctx)
        x = pool.prepare_input(images, ctx.space, ctx.zca)
        return {"cmi": self.loss(x, ctx.labels, self.proxy(ctx), ctx.num_classes)}
