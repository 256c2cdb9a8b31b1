"""Pools of pretrained proxy networks (the frozen feature extractors of the CMI and IID regularizers).

The official recipes (:data:`PRETRAIN_RECIPES`): K instance-norm ResNet18s, each trained 40 epochs on the real train
split with SGD lr 0.01 (constant), momentum 0.9, batch 256, no augmentation, weight decay 1e-3
(``ndhg1213/CMIDD: pretrain/pre_model.py``) or 5e-4 (``VincenDen/IID: DM+ours/pre_model.py``); the distillation
samples one at random per step. A pool is ONE file (:class:`~lightning_dd.pretrained.poolfile.PoolFile`) recording
the dataset, resolution, normalisation and image space it was trained for, so a regularizer can refuse a pool made
for other data. Networks are built lazily, once per device and proxy, on first use, and held in plain dicts (never
registered submodules: no checkpoint bloat, no DDP broadcast, style.md pitfall 19).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_dd.networks import create_network
from lightning_dd.pretrained.poolfile import PoolFile, device_key
from lightning_dd.seeding import STREAM_PROXY_TRAIN, make_generator
from lightning_dd.training import TrainRecipe, fit_classifier

__all__ = ["DEFAULT_PRETRAIN_RECIPE", "PRETRAIN_RECIPES", "PretrainRecipe", "ProxyPool", "freeze",
           "pretrain_proxies", "to_proxy_input"]


@dataclass(frozen=True)
class PretrainRecipe:
    """How the proxies of a pool are trained.

    Attributes:
        network: zoo name of the proxies.
        train: the :func:`~lightning_dd.training.fit_classifier` recipe.
        source: the public upstream file the recipe follows.
    """

    network: str
    train: TrainRecipe
    source: str


PRETRAIN_RECIPES: dict[str, PretrainRecipe] = {
    "cmi": PretrainRecipe("resnet18", TrainRecipe(epochs=40, lr=0.01, momentum=0.9, weight_decay=1e-3, batch_size=256),
                          "ndhg1213/CMIDD: pretrain/pre_model.py (run with --model ResNet18, as its consumers need)"),
    "iid": PretrainRecipe("resnet18", TrainRecipe(epochs=40, lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=256),
                          "VincenDen/IID: DM+ours/pre_model.py"),
}
"""Named pretraining recipes: instance-norm ResNet18, 40 epochs, SGD lr 0.01 constant, momentum 0.9, batch 256, no
augmentation; weight decay 1e-3 (``cmi``) or 5e-4 (``iid``)."""

DEFAULT_PRETRAIN_RECIPE = "cmi"


def freeze(net: nn.Module) -> nn.Module:
    """Eval mode, no parameter gradients (inputs still receive gradients); drops gradients left by training."""
    net.eval()
    net.requires_grad_(False)
    for param in net.parameters():
        param.grad = None
    return net


class ProxyPool(PoolFile):
    """K frozen networks of one architecture for one dataset / resolution / normalisation / image space.

    Give either the ``networks`` (in memory, e.g. just trained: they are frozen and become the pool's networks on
    their device) or their ``state_dicts`` (as read from a file: networks are built on first use).

    Args:
        networks: the K networks (``None`` when ``state_dicts`` are given).
        network: zoo name of the architecture.
        dataset, image_shape, num_classes, mean, std: what the proxies were trained on (inputs must be normalised
            with these ``mean``/``std``).
        info: the recipe (epochs, lr, ...), seed and per-proxy train accuracy.
        space: image space of the training inputs (``"normalized"`` for pools of ``lightning-dd pretrain``).
        state_dicts: the K state dicts (CPU tensors), instead of ``networks``.
        device: default device of :attr:`networks` / :meth:`sample` (default: the networks' device, else CPU).
    """

    format_name = "lightning_dd.proxy_pool"
    format_version = 1
    kind = "proxy pool"
    payload_key = "state_dicts"

    def __init__(self, networks: Sequence[nn.Module] | None, network: str, dataset: str, image_shape: Sequence[int],
                 num_classes: int, mean: Sequence[float], std: Sequence[float], info: Mapping[str, Any] | None = None,
                 space: str = "normalized", *, state_dicts: Sequence[Mapping[str, Tensor]] | None = None,
                 device: torch.device | str | None = None) -> None:
        if (networks is None) == (state_dicts is None):
            raise ValueError("give a ProxyPool either its networks or their state_dicts (exactly one)")
        if networks is not None:
            state_dicts = [{k: v.detach().cpu().clone() for k, v in net.state_dict().items()} for net in networks]
            if device is None:
                device = next(networks[0].parameters()).device if networks else "cpu"
        assert state_dicts is not None
        super().__init__([dict(s) for s in state_dicts], network, dataset, image_shape, num_classes, mean, std,
                         space=space, info=info, device=device if device is not None else "cpu")
        for index, net in enumerate(networks or ()):
            param = next(net.parameters(), None)
            key = device_key(param.device) if param is not None else self.device
            self._materialized.setdefault(key, {})[index] = freeze(net)

    @classmethod
    def _from_file(cls, entries: list[Any], header: dict[str, Any], device: torch.device) -> ProxyPool:
        return cls(None, header["network"], header["dataset"], header["image_shape"], header["num_classes"],
                   header["mean"], header["std"], header["info"], header["space"], state_dicts=entries,
                   device=device)

    @classmethod
    def _check_entry(cls, entry: Any, index: int) -> None:
        if not isinstance(entry, dict) or not entry or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in entry.items()
        ):
            raise ValueError(f"state_dicts[{index}] is not a state dict (str -> tensor)")

    @classmethod
    def create_hint(cls, path: str | Path) -> str:
        return f"create one with `lightning-dd pretrain --output {path}`"

    @classmethod
    def remedy(cls, dataset: str) -> str:
        return f"pretrain a pool for this data with `lightning-dd pretrain --data.dataset {dataset} ...`"

    def accepts_space(self, space: str) -> bool:
        """A pool trained on normalised images also takes ``"pixels"`` and ``"zca"`` images (:func:`to_proxy_input`
        maps them into its space)."""
        return space == self.space or (self.space == "normalized" and space in ("pixels", "zca"))

    def _materialize(self, entry: Any, device: torch.device) -> nn.Module:
        c, h, w = self.image_shape
        # throwaway init from a private generator (load_state_dict overwrites it; the global RNG stays untouched)
        net = create_network(self.network, c, self.num_classes, (h, w), generator=torch.Generator().manual_seed(0))
        try:
            net.load_state_dict(entry)
        except RuntimeError as err:
            raise ValueError(f"a state dict of the {self.kind} does not fit network {self.network!r}: {err}") from err
        return freeze(net.to(device))

    # ------------------------------------------------------------------------------------------ networks
    def network_at(self, index: int, device: torch.device | str | None = None) -> nn.Module:
        """Proxy ``index`` on ``device`` (default :attr:`device`), frozen; built on first use."""
        net: nn.Module = self.materialized(index, device)
        return net

    def networks_on(self, device: torch.device | str | None = None) -> list[nn.Module]:
        """All K proxies on ``device`` (default :attr:`device`), built where not yet."""
        return [self.network_at(i, device) for i in range(len(self))]

    @property
    def networks(self) -> list[nn.Module]:
        """All K proxies on the default :attr:`device` (:meth:`networks_on`)."""
        return self.networks_on()

    @networks.setter
    def networks(self, value: Sequence[nn.Module]) -> None:
        """Hand the pool its K networks moved to another device (``[net.to(d) for net in pool.networks]``): they
        become the networks of that device, which becomes the default; networks cached for other devices are
        dropped. The stored state dicts are unchanged (moving does not change weights)."""
        if len(value) != len(self):
            raise ValueError(f"the pool holds {len(self)} networks, got {len(value)}")
        key = device_key(next(value[0].parameters()).device)
        self._materialized = {key: {i: freeze(net) for i, net in enumerate(value)}}
        self.device = key

    def sample(self, generator: torch.Generator, device: torch.device | str | None = None) -> nn.Module:
        """One proxy chosen uniformly with ``generator`` (one ``randint`` draw), on ``device`` (default
        :attr:`device`)."""
        index = int(torch.randint(len(self), (1,), generator=generator))
        return self.network_at(index, device)

    def prepare_input(self, images: Tensor, space: str, zca: Any = None) -> Tensor:
        """``images`` from image ``space`` into this pool's input space (:func:`to_proxy_input`)."""
        return to_proxy_input(images, space, self.mean, self.std, target_space=self.space, zca=zca)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} x {self.network} for {self.dataset} {self.image_shape}, "
                f"space={self.space!r})")


def to_proxy_input(images: Tensor, space: str, mean: Sequence[float], std: Sequence[float],
                   target_space: str = "normalized", zca: Any = None) -> Tensor:
    """Map images from the method's space to the proxies' input space (``(x - mean) / std`` for normalised pools).

    Images already in ``target_space`` are returned as they are (the pool's statistics were checked equal to the
    run's); ``"pixels"`` ([0, 1], IDC) are normalised for a ``"normalized"`` pool — the official CMI-IDC code feeds
    raw pixels to a ResNet trained on normalised images, a bug we do not copy. ``"zca"`` images (MTT) are mapped back
    to pixels with ``zca.inverse`` (the run's fitted :class:`~lightning_dd.augment.zca.ZCA`, differentiable) and
    normalised; a pool trained on ZCA images takes them as they are. Anything else is refused.

    Args:
        images: ``(N, C, H, W)``.
        space: the images' space.
        mean, std: per-channel statistics of the pool (length ``C``).
        target_space: the pool's space (:attr:`ProxyPool.space`).
        zca: the run's ZCA, needed for ``"zca"`` images and a ``"normalized"`` pool.
    """
    if space == target_space:
        return images
    if space == "zca" and target_space == "normalized":
        if zca is None:
            raise ValueError("images in space 'zca' need the run's ZCA (RegularizerContext.zca) to reach a "
                             "'normalized' proxy pool; got none")
        images = zca.inverse(images)
        space = "pixels"
    if space == "pixels" and target_space == "normalized":
        m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return (images - m) / s
    raise ValueError(f"proxy regularizers need images in the pool's space {target_space!r} (or 'pixels' for a "
                     f"'normalized' pool), got {space!r} (a {space!r}-space run needs proxies trained on "
                     f"{space!r} data)")


def pretrain_proxies(
    train_images: Tensor,
    train_labels: Tensor,
    *,
    dataset: str,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    space: str = "normalized",
    num_models: int = 5,
    recipe: str | PretrainRecipe = DEFAULT_PRETRAIN_RECIPE,
    epochs: int | None = None,
    network: str | None = None,
    lr: float | None = None,
    momentum: float | None = None,
    weight_decay: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log: Callable[[str], Any] = print,
) -> ProxyPool:
    """Train ``num_models`` proxies with a named recipe (constant lr, no augmentation) and return the pool.

    Proxy ``k`` is initialised from ``make_generator(seed, STREAM_PROXY_TRAIN, k)`` and trained by
    :func:`~lightning_dd.training.fit_classifier` with the same generator (rank-local: every rank given the same
    seed trains the same pool).

    Args:
        train_images: ``(N, C, H, W)`` float32 in image ``space`` (normalised with ``mean``/``std``), any device.
        train_labels: int64 ``(N,)`` on ``train_images``' device.
        dataset, num_classes, mean, std, space: recorded in the pool (what ``train_images`` are).
        num_models: K.
        recipe: a :data:`PRETRAIN_RECIPES` name (default ``"cmi"``) or a :class:`PretrainRecipe`.
        epochs, network, lr, momentum, weight_decay, batch_size: override the recipe's values when given.
        seed: the pool's seed.
        device: where to train.
        log: called with one progress line per proxy.
    """
    base = _resolve_recipe(recipe)
    if num_models < 1:
        raise ValueError(f"num_models must be >= 1, got {num_models}")
    overrides: dict[str, Any] = {"epochs": epochs, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                 "batch_size": batch_size}
    train = replace(base.train, **{k: v for k, v in overrides.items() if v is not None})
    arch = network if network is not None else base.network
    device = torch.device(device)
    c, h, w = train_images.shape[1:]
    networks, accuracies = [], []
    for k in range(num_models):
        generator = make_generator(seed, STREAM_PROXY_TRAIN, k)
        net = create_network(arch, c, num_classes, (h, w), generator=generator).to(device)
        result = fit_classifier(net, train_images, train_labels, train, generator, device=device)
        accuracies.append(result.train_accuracy)
        log(f"[lightning_dd] proxy {k + 1}/{num_models} ({arch}): last-epoch train accuracy "
            f"{100 * result.train_accuracy:.1f}%")
        networks.append(freeze(net))
    info = {"recipe": base.source if isinstance(recipe, PretrainRecipe) else recipe, "epochs": train.epochs,
            "lr": train.lr, "momentum": train.momentum, "weight_decay": train.weight_decay,
            "batch_size": train.batch_size, "augmentation": train.dsa_strategy, "seed": seed,
            "train_accuracy": accuracies, "train_images": int(train_images.shape[0])}
    return ProxyPool(networks, arch, dataset, (c, h, w), num_classes, mean, std, info, space)


def _resolve_recipe(recipe: str | PretrainRecipe) -> PretrainRecipe:
    if isinstance(recipe, PretrainRecipe):
        return recipe
    if recipe not in PRETRAIN_RECIPES:
        raise ValueError(f"unknown pretraining recipe {recipe!r}; allowed: {', '.join(PRETRAIN_RECIPES)}")
    return PRETRAIN_RECIPES[recipe]
