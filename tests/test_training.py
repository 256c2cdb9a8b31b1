"""``fit_classifier`` / ``TrainRecipe``: the one classifier loop, against a naive hand-written loop (bit-identical
parameters), its epoch hook, precision, reproducibility and the refusal of bad recipes and inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lightning_dd.augment import DSA, IDCAugment
from lightning_dd.evaluation import StudentRecipe
from lightning_dd.networks import create_network
from lightning_dd.training import FitResult, TrainRecipe, classification_loss, cutmix, fit_classifier

N, SHAPE, K = 37, (3, 16, 16), 5  # 37 images: the last batch of every epoch is a short one


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, *SHAPE, generator=g), torch.randint(0, K, (N,), generator=g)


def make_net(seed: int = 1) -> nn.Module:
    return create_network("convnet", SHAPE[0], K, SHAPE[1:], generator=torch.Generator().manual_seed(seed), width=8)


def naive_fit(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, *, epochs: int,
              lr: float, momentum: float, weight_decay: float, batch_size: int, milestones: tuple[int, ...],
              factor: float, strategy: str, soft: torch.Tensor | None = None) -> list[float]:
    """The textbook loop, written out: shuffle, augment, step; lr x factor at the start of each milestone epoch.
    Returns the per-epoch train accuracy."""
    dsa = DSA(strategy)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    accs = []
    for epoch in range(epochs):
        if epoch in milestones:
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * factor
        net.train()
        perm = torch.randperm(images.shape[0], generator=generator)
        correct = 0
        for start in range(0, images.shape[0], batch_size):
            idx = perm[start : start + batch_size]
            x = images[idx]
            if strategy != "none":
                x = dsa(x, generator)
            logits = net(x)
            if soft is None:
                loss = nn.functional.cross_entropy(logits, labels[idx])
            else:
                loss = nn.functional.cross_entropy(logits, soft[idx].softmax(dim=1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == labels[idx]).sum())
        accs.append(correct / images.shape[0])
    return accs


def assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ------------------------------------------------------------------------------------------------ faithfulness


@pytest.mark.parametrize(
    ("strategy", "milestones", "soft"),
    [("color_crop_cutout_flip_scale_rotate", (1,), False), ("none", (), False), ("crop_scale", (0,), True)],
)
def test_equals_a_naive_loop_bit_for_bit(strategy: str, milestones: tuple[int, ...], soft: bool) -> None:
    images, labels = data()
    soft_labels = torch.randn(N, K, generator=torch.Generator().manual_seed(2)) if soft else None
    recipe = TrainRecipe(epochs=2, lr=0.05, momentum=0.9, weight_decay=5e-4, batch_size=8, lr_milestones=milestones,
                         lr_decay_factor=0.1, dsa_strategy=strategy)
    net, reference = make_net(), make_net()
    g, g_ref = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    result = fit_classifier(net, images, labels, recipe, g, soft_labels=soft_labels)
    accs = naive_fit(reference, images, labels, g_ref, epochs=2, lr=0.05, momentum=0.9, weight_decay=5e-4,
                     batch_size=8, milestones=milestones, factor=0.1, strategy=strategy, soft=soft_labels)
    assert_same_parameters(net, reference)
    assert torch.equal(g.get_state(), g_ref.get_state())  # the same draws, in the same order
    assert result.train_accuracy == accs[-1]
    assert (result.epochs, result.steps) == (2, 2 * math.ceil(N / 8))
    assert math.isfinite(result.train_loss) and result.train_loss > 0


def test_learned_lr_override_equals_a_recipe_with_that_lr() -> None:
    images, labels = data()
    a, b = make_net(), make_net()
    fit_classifier(a, images, labels, TrainRecipe(epochs=2, batch_size=10, lr=0.3), torch.Generator().manual_seed(0),
                   lr=0.02)
    fit_classifier(b, images, labels, TrainRecipe(epochs=2, batch_size=10, lr=0.02), torch.Generator().manual_seed(0))
    assert_same_parameters(a, b)


def test_student_recipe_is_a_train_recipe_with_the_protocol_schedule() -> None:
    recipe = StudentRecipe(epochs=7, lr=0.5, batch_size=64, dsa_strategy="crop")
    assert recipe.train_recipe() == TrainRecipe(epochs=7, lr=0.5, momentum=0.9, weight_decay=5e-4, batch_size=64,
                                                lr_milestones=(3,), lr_decay_factor=0.1, dsa_strategy="crop")
    assert recipe.train_recipe(lr=0.25).lr == 0.25
    assert StudentRecipe(epochs=1).train_recipe().lr_milestones == (0,)  # decays from the start, as MultiStepLR does


# ------------------------------------------------------------------------------------------------ hook, rng


def test_hook_is_called_after_every_epoch_with_the_trained_net() -> None:
    images, labels = data()
    net = make_net()
    seen: list[tuple[int, int, torch.Tensor]] = []

    def hook(epoch: int, trained: nn.Module) -> None:
        seen.append((epoch, id(trained), trained.classifier.weight.detach().clone()))
        trained.eval()  # the loop must restore train mode for the next epoch

    fit_classifier(net, images, labels, TrainRecipe(epochs=3, batch_size=16, lr_milestones=(1,)),
                   torch.Generator().manual_seed(0), on_epoch_end=hook)
    assert [s[0] for s in seen] == [0, 1, 2]
    assert {s[1] for s in seen} == {id(net)}
    assert not torch.equal(seen[0][2], seen[1][2]) and not torch.equal(seen[1][2], seen[2][2])  # snapshots differ
    assert torch.equal(seen[2][2], net.classifier.weight)  # the last snapshot is the final network

    # train mode was restored after the hook switched to eval: same result as without the hook's eval()
    plain = make_net()
    fit_classifier(plain, images, labels, TrainRecipe(epochs=3, batch_size=16, lr_milestones=(1,)),
                   torch.Generator().manual_seed(0))
    assert_same_parameters(net, plain)


def test_deterministic_and_global_rng_untouched() -> None:
    images, labels = data()
    recipe = TrainRecipe(epochs=2, batch_size=9, dsa_strategy="color_crop_cutout_flip_scale_rotate")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b, c = make_net(), make_net(), make_net()
    fit_classifier(a, images, labels, recipe, torch.Generator().manual_seed(4))
    torch.manual_seed(999)  # the global RNG does not matter
    fit_classifier(b, images, labels, recipe, torch.Generator().manual_seed(4))
    fit_classifier(c, images, labels, recipe, torch.Generator().manual_seed(5))
    assert_same_parameters(a, b)  # two "ranks" with the same generator state train the same network
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    torch.manual_seed(123)
    assert torch.equal(torch.get_rng_state(), state)


# ------------------------------------------------------------------------------------------------ precision


def test_bf16_autocast_runs_on_cpu_and_keeps_float32_parameters() -> None:
    images, labels = data()
    recipe = TrainRecipe(epochs=2, batch_size=16, dsa_strategy="crop_flip")
    net, fp32 = make_net(), make_net()
    result = fit_classifier(net, images, labels, recipe, torch.Generator().manual_seed(0),
                            autocast_dtype=torch.bfloat16)
    fit_classifier(fp32, images, labels, recipe, torch.Generator().manual_seed(0))
    assert isinstance(result, FitResult) and math.isfinite(result.train_loss) and 0 <= result.train_accuracy <= 1
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net.parameters())
    assert not torch.equal(net.classifier.weight, fp32.classifier.weight)  # bf16 forward really ran
    assert torch.allclose(net.classifier.weight, fp32.classifier.weight, atol=0.05)


def test_classification_loss_uses_the_softmax_of_soft_labels() -> None:
    logits, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 0])
    assert torch.equal(classification_loss(logits, labels), nn.functional.cross_entropy(logits, labels))
    one_hot = 1e4 * nn.functional.one_hot(labels, 3).float()
    assert torch.allclose(classification_loss(logits, labels, one_hot), nn.functional.cross_entropy(logits, labels))


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, r"TrainRecipe.epochs must be an integer >= 1, got 0"),
        ({"epochs": 2.5}, r"TrainRecipe.epochs must be an integer >= 1, got 2.5"),
        ({"batch_size": 0}, r"TrainRecipe.batch_size must be an integer >= 1, got 0"),
        ({"lr": 0.0}, r"TrainRecipe.lr must be a finite number > 0, got 0.0"),
        ({"lr": float("nan")}, r"TrainRecipe.lr must be a finite number > 0, got nan"),
        ({"momentum": 1.0}, r"TrainRecipe.momentum must be in \[0, 1\), got 1.0"),
        ({"weight_decay": -1e-4}, r"TrainRecipe.weight_decay must be a finite number >= 0, got -0.0001"),
        ({"lr_decay_factor": 0.0}, r"TrainRecipe.lr_decay_factor must be a finite number > 0, got 0.0"),
        ({"lr_milestones": (3, 1)}, r"strictly increasing integer epochs in \[0, 4\), got \(3, 1\)"),
        ({"lr_milestones": (4,)}, r"lr_milestones must be strictly increasing integer epochs in \[0, 4\), got \(4,\)"),
        ({"lr_milestones": (1, 1)}, r"lr_milestones must be strictly increasing"),
        ({"dsa_strategy": "color_blur"}, r"unknown DSA op 'blur' in strategy 'color_blur'; allowed ops: color, crop"),
    ],
)
def test_bad_recipe_values_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainRecipe(**{"epochs": 4, **changes})


def test_recipe_accepts_a_list_of_milestones_and_builds_its_parts() -> None:
    recipe = TrainRecipe(epochs=4, lr_milestones=[1, 3])  # type: ignore[arg-type]  # as a YAML config gives it
    assert recipe.lr_milestones == (1, 3)
    assert TrainRecipe(epochs=4).augmenter().is_identity  # "none" is the identity DSA, not None
    assert TrainRecipe(epochs=4, dsa_strategy="flip", dsa_align_corners=True).augmenter().align_corners
    optimizer = recipe.optimizer([nn.Parameter(torch.zeros(1))])
    assert TrainRecipe(epochs=4).scheduler(optimizer) is None
    scheduler = recipe.scheduler(optimizer)
    assert scheduler is not None
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.01, 0.001, 0.001, 0.0001])


def test_bad_inputs_are_refused() -> None:
    images, labels = data()
    recipe = TrainRecipe(epochs=1)
    g = torch.Generator()
    cases = [
        ((images[0], labels), {}, r"images must be float \(N, C, H, W\)"),
        ((images.long(), labels), {}, r"images must be float"),
        ((images[:0], labels[:0]), {}, r"at least one training image"),
        ((images, labels.int()), {}, r"labels must be int64 of shape \(37,\), got torch.int32"),
        ((images, labels[:5]), {}, r"labels must be int64 of shape \(37,\)"),
        ((images, labels), {"soft_labels": torch.zeros(5, K)}, r"soft_labels must be \(N=37, K\)"),
        ((images, labels), {"lr": -1.0}, r"lr must be a finite number > 0, got -1.0"),
        ((images, labels), {"autocast_dtype": torch.float64}, r"autocast_dtype must be None, torch.bfloat16 or"),
    ]
    for (x, y), kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            fit_classifier(make_net(), x, y, recipe, g, **kwargs)
    with pytest.raises(ValueError, match="network with parameters"):
        fit_classifier(nn.Flatten(), images, labels, recipe, g)


# ------------------------------------------------------------------------------------------------ CutMix, IDC recipe


def distinct_images(b: int = 6, c: int = 2, h: int = 12, w: int = 20) -> torch.Tensor:
    """Every pixel value different (H != W: a swapped height and width would show)."""
    return torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w)


def changed_box(x: torch.Tensor, mixed: torch.Tensor, partner: torch.Tensor) -> tuple[int, int, int, int]:
    """The rectangle ``(y1, y2, x1, x2)`` CutMix replaced, read off the images alone; checks that every image with
    another partner changed exactly there (and nowhere else) and that the others did not change."""
    changed = (mixed != x).any(dim=1)  # (B, H, W)
    moved = partner != torch.arange(x.shape[0])
    assert not bool(changed[~moved].any())  # an image mixed with itself is unchanged
    region = changed[moved].any(dim=0)
    for i in moved.nonzero().flatten().tolist():
        assert torch.equal(changed[i], region)  # one box, the same for every image
    rows, cols = region.any(dim=1).nonzero().flatten(), region.any(dim=0).nonzero().flatten()
    if rows.numel() == 0:
        return 0, 0, 0, 0
    y1, y2, x1, x2 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    assert int(region.sum()) == (y2 - y1) * (x2 - x1)  # a full rectangle
    return y1, y2, x1, x2


def ref_box(lam: float, cy: int, cx: int, h: int, w: int) -> tuple[int, int, int, int]:
    """IDC's ``rand_bbox``: sides ``int(size * sqrt(1 - lam))``, centre +/- half the side, clipped to [0, size]."""
    cut_h, cut_w = int(h * math.sqrt(1.0 - lam)), int(w * math.sqrt(1.0 - lam))
    return (min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h),
            min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w))


@pytest.mark.parametrize("beta", [1.0, 0.5, 4.0])
def test_cutmix_pastes_one_box_of_the_partner_and_reports_the_kept_fraction(beta: float) -> None:
    x = distinct_images()
    b, _, h, w = x.shape
    boxes = set()
    for seed in range(25):
        mixed, (partner, kept) = cutmix(x, torch.Generator().manual_seed(seed), beta)
        assert sorted(partner.tolist()) == list(range(b)) and partner.dtype == torch.long  # a permutation
        y1, y2, x1, x2 = changed_box(x, mixed, partner)
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        assert torch.equal(mixed[:, :, inside], x[partner][:, :, inside])  # the partner's pixels in the box
        assert torch.equal(mixed[:, :, ~inside], x[:, :, ~inside])  # the image's own outside it
        assert kept == pytest.approx(1 - (y2 - y1) * (x2 - x1) / (h * w), abs=1e-12) and 0 <= kept <= 1
        boxes.add((y1, y2, x1, x2))
    assert len(boxes - {(0, 0, 0, 0)}) > 10  # boxes vary (an empty one is possible: lam near 1)
    assert torch.equal(x, distinct_images())  # the input is not modified


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_cutmix_box_follows_the_reference_rand_bbox(beta: float) -> None:
    x = distinct_images()
    b, _, h, w = x.shape
    clipped = 0
    for seed in range(25):
        mixed, (partner, kept) = cutmix(x, torch.Generator().manual_seed(seed), beta)
        g = torch.Generator().manual_seed(seed)  # the documented draws: lam, permutation, centre row, centre column
        if beta == 1.0:
            lam = float(torch.rand(1, generator=g))
        else:
            lam = float(np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g))).beta(beta, beta))
        assert torch.equal(partner, torch.randperm(b, generator=g))
        cy, cx = int(torch.randint(0, h, (1,), generator=g)), int(torch.randint(0, w, (1,), generator=g))
        y1, y2, x1, x2 = ref_box(lam, cy, cx, h, w)
        assert changed_box(x, mixed, partner) == ((y1, y2, x1, x2) if y2 > y1 and x2 > x1 else (0, 0, 0, 0))
        assert kept == 1 - (y2 - y1) * (x2 - x1) / (h * w)
        full = (int(h * math.sqrt(1 - lam)) // 2 * 2, int(w * math.sqrt(1 - lam)) // 2 * 2)  # unclipped sides
        clipped += (y2 - y1, x2 - x1) != full
    assert clipped > 0  # the clipping at the border was exercised


def test_cutmix_is_reproducible_from_the_generator() -> None:
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    for beta in (1.0, 0.3):
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        (a, (pa, ka)), (b, (pb, kb)) = cutmix(x, g1, beta), cutmix(x, g2, beta)
        assert torch.equal(a, b) and torch.equal(pa, pb) and ka == kb
        assert torch.equal(g1.get_state(), g2.get_state())
        runs = {(tuple(cutmix(x, torch.Generator().manual_seed(s), beta)[1][0].tolist()),
                 cutmix(x, torch.Generator().manual_seed(s), beta)[1][1]) for s in range(6)}
        assert len(runs) == 6  # other seeds, other partners and boxes
    uniform = [cutmix(x, torch.Generator().manual_seed(s), 1.0)[1][1] for s in range(6)]
    assert [cutmix(x, torch.Generator().manual_seed(s), 0.3)[1][1] for s in range(6)] != uniform  # beta is used
    assert torch.equal(torch.get_rng_state(), state)  # neither the global torch RNG ...
    # ... nor numpy's global RNG is used by the beta != 1 path
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    cutmix(x, torch.Generator().manual_seed(1), 0.3)
    assert np.array_equal(np.random.get_state()[1], before)


def test_cutmix_beta_shapes_the_box_area() -> None:
    x = distinct_images(b=2, h=32, w=32)
    # beta = 50 concentrates lam near 1/2: unclipped boxes of side int(32 * sqrt(1 - lam)) // 2 * 2 in 20 .. 24
    centred = [cutmix(x, torch.Generator().manual_seed(s), 50.0)[1][1] for s in range(30)]
    spread = [cutmix(x, torch.Generator().manual_seed(s), 1.0)[1][1] for s in range(30)]
    assert all(kept >= 1 - 24 * 24 / 1024 for kept in centred)
    assert max(spread) - min(spread) > max(centred) - min(centred)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cutmix_prob": 1.5}, r"TrainRecipe.cutmix_prob must be in \[0, 1\], got 1.5"),
        ({"cutmix_prob": -0.1}, r"TrainRecipe.cutmix_prob must be in \[0, 1\], got -0.1"),
        ({"cutmix_beta": 0}, r"TrainRecipe.cutmix_beta must be a finite number > 0, got 0"),
        ({"cutmix_beta": float("inf")}, r"TrainRecipe.cutmix_beta must be a finite number > 0, got inf"),
        ({"augmentation": "mixup"}, r"TrainRecipe.augmentation must be one of \('dsa', 'idc'\), got 'mixup'"),
    ],
)
def test_bad_cutmix_and_augmentation_values_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainRecipe(**{"epochs": 4, **changes})


def test_idc_recipe_builds_idc_augment() -> None:
    aug = TrainRecipe(epochs=1, augmentation="idc", dsa_strategy="color_crop_flip_scale_rotate").augmenter()
    assert isinstance(aug, IDCAugment) and aug.always == ("flip", "color") and aug.ops == ("crop", "scale", "rotate")
    assert type(TrainRecipe(epochs=1, dsa_strategy="crop").augmenter()) is DSA


def test_cutmix_with_soft_labels_is_refused() -> None:
    images, labels = data()
    with pytest.raises(ValueError, match=r"cutmix_prob.*soft_labels"):
        fit_classifier(make_net(), images, labels, TrainRecipe(epochs=1, cutmix_prob=1.0),
                       torch.Generator().manual_seed(0), soft_labels=torch.randn(N, K))


def naive_idc_fit(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, *,
                  epochs: int, batch_size: int, strategy: str, cutmix_prob: float, beta: float) -> tuple[int, int]:
    """The IDC training loop written out (``train.py``): augment, then CutMix with probability ``p``, the loss
    weighting both labels by area; constant lr 0.01, momentum 0.9, weight decay 5e-4. Returns (mixed, steps)."""
    augment = IDCAugment(strategy)
    mixed = steps = 0
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(images.shape[0], generator=generator)
        for start in range(0, images.shape[0], batch_size):
            idx = perm[start : start + batch_size]
            x, y = augment(images[idx], generator), labels[idx]
            if cutmix_prob and float(torch.rand(1, generator=generator)) < cutmix_prob:
                x, (partner, kept) = cutmix(x, generator, beta)
                mixed += 1
                logits = net(x)
                loss = (kept * nn.functional.cross_entropy(logits, y)
                        + (1 - kept) * nn.functional.cross_entropy(logits, y[partner]))
            else:
                loss = nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    return mixed, steps


@pytest.mark.parametrize(("cutmix_prob", "beta"), [(0.0, 1.0), (0.5, 1.0), (1.0, 2.0)])
def test_idc_recipe_equals_the_written_out_idc_loop(cutmix_prob: float, beta: float) -> None:
    images, labels = data()
    strategy = "color_crop_flip_scale_rotate"
    recipe = TrainRecipe(epochs=1, batch_size=8, augmentation="idc", dsa_strategy=strategy, cutmix_prob=cutmix_prob,
                         cutmix_beta=beta)
    net, reference = make_net(), make_net()
    g, g_ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    fit_classifier(net, images, labels, recipe, g)
    mixed, steps = naive_idc_fit(reference, images, labels, g_ref, epochs=1, batch_size=8, strategy=strategy,
                                 cutmix_prob=cutmix_prob, beta=beta)
    assert steps == 5 and mixed == {0.0: 0, 0.5: 4, 1.0: 5}[cutmix_prob]  # p = 0.5 mixes some batches, not all
    assert_same_parameters(net, reference)
    assert torch.equal(g.get_state(), g_ref.get_state())


@pytest.mark.parametrize("augmentation", ["dsa", "idc"])
def test_cutmix_prob_zero_draws_nothing(augmentation: str) -> None:
    images, labels = data()
    base = {"epochs": 1, "batch_size": 8, "augmentation": augmentation, "dsa_strategy": "color_crop"}
    runs = {}
    for name, extra in (("without", {}), ("zero", {"cutmix_prob": 0.0, "cutmix_beta": 3.0}),
                        ("tiny", {"cutmix_prob": 1e-12})):
        net, g = make_net(), torch.Generator().manual_seed(4)
        result = fit_classifier(net, images, labels, TrainRecipe(**base, **extra), g)
        runs[name] = (net, g.get_state(), result)
    assert_same_parameters(runs["zero"][0], runs["without"][0])
    assert torch.equal(runs["zero"][1], runs["without"][1]) and runs["zero"][2] == runs["without"][2]
    # a positive probability draws once per batch, even when it never mixes: the draws are observable
    assert not torch.equal(runs["tiny"][1], runs["without"][1])


def test_idc_recipe_with_cutmix_lowers_the_training_loss() -> None:
    gen = torch.Generator().manual_seed(0)
    templates = 2 * torch.randn(K, *SHAPE, generator=gen)  # one pattern per class: separable
    labels = torch.arange(K).repeat(8)
    images = templates[labels] + 0.1 * torch.randn(labels.numel(), *SHAPE, generator=gen)
    net = make_net()

    def clean_loss() -> float:
        with torch.no_grad():
            return float(nn.functional.cross_entropy(net(images), labels))

    before = clean_loss()
    recipe = TrainRecipe(epochs=6, lr=0.05, batch_size=10, augmentation="idc",
                         dsa_strategy="color_crop_flip_scale_rotate", cutmix_prob=0.5)
    result = fit_classifier(net, images, labels, recipe, torch.Generator().manual_seed(2))
    assert before > 1.0  # chance level is ln 5 = 1.61
    assert clean_loss() < 0.5 * before
    assert math.isfinite(result.train_loss) and result.train_loss < before
