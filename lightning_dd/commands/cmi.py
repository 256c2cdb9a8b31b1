"""``lightning-dd cmi``: the class-aware CMI of a distilled set under every proxy of a pool."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from lightning_dd._atomic import atomic_json_dump, check_writable, write_or_fallback
from lightning_dd.artifact import DistilledSet
from lightning_dd.losses import CMILoss
from lightning_dd.pretrained import ProxyPool

__all__ = ["cmi"]


def cmi(
    distilled: str,
    pool: str,
    representation: Literal["features", "logits"] = "features",
    temperature: float = 1.0,
    reduction: Literal["global", "per_class"] = "global",
    output: str | None = None,
) -> dict[str, Any]:
    """Measure the CMI of a distilled set under every proxy of a pool (mean and per proxy; one JSON line).

    Args:
        distilled: the artifact.
        pool: the proxy pool (``lightning-dd pretrain``) of the artifact's dataset.
        representation: the proxies' output the CMI is computed on: ``features`` (official) or ``logits``.
        temperature: softmax temperature.
        reduction: ``global`` (mean over samples) or ``per_class`` (per-class means, summed).
        output: also write the JSON result to this file.
    """
    if output:
        check_writable(output, "--output")
    artifact = DistilledSet.load(distilled)
    proxies = ProxyPool.load(pool)
    proxies.check_compatible(artifact.dataset, artifact.image_shape, artifact.mean, artifact.std, artifact.space,
                             source=f"proxy pool {pool}")
    loss = CMILoss(output=representation, temperature=temperature, reduction=reduction)
    x = proxies.prepare_input(artifact.images, artifact.space)
    with torch.no_grad():
        values = [float(loss(x, artifact.labels, net, artifact.num_classes)) for net in proxies.networks]
    broken = [k for k, v in enumerate(values) if not math.isfinite(v)]
    if broken:
        raise ValueError(f"the CMI is not finite under the proxies {broken} of {pool} ({values}): their outputs "
                         "overflow on this set; check the pool and the set")
    result = {"distilled": distilled, "method": artifact.method, "ipc": artifact.ipc, "pool": pool,
              "representation": representation, "cmi_mean": sum(values) / len(values), "cmi_per_proxy": values}
    if output:
        write_or_fallback(output, lambda p: atomic_json_dump(result, p), "CMI result")
    return result
