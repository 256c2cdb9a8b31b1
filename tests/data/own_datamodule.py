"""A user's own data source for the command line (``--data.class_path tests.data.own_datamodule.Stripes``)."""

from __future__ import annotations

import torch

from lightning_dd.data import DatasetInfo, LabeledImages, RealDataModule


class Stripes(RealDataModule):
    """Horizontal vs vertical stripes, 1x8x8, generated in memory: the three source hooks of RealDataModule."""

    def check_source(self, dataset: str, root: str | None) -> None:
        """Nothing on disk to check."""

    def describe(self) -> DatasetInfo:
        return DatasetInfo(name="stripes", channels=1, image_size=(8, 8), num_classes=2, mean=(0.5,), std=(0.5,),
                           class_names=("horizontal", "vertical"), dsa_strategy="none")

    def read_split(self, train: bool) -> LabeledImages:
        g = torch.Generator().manual_seed(0 if train else 1)
        n = 40 if train else 20
        labels = torch.arange(n) % 2
        base = (torch.arange(8) % 2).float()
        images = torch.where(labels.view(-1, 1, 1, 1) == 0, base.view(1, 1, 8, 1), base.view(1, 1, 1, 8))
        noisy = (images * 200 + torch.randint(0, 55, (n, 1, 8, 8), generator=g)).clamp(0, 255).to(torch.uint8)
        return LabeledImages(noisy, labels, ("horizontal", "vertical"))
