"""The distribution-matching distance (DM): batched and chunked evaluation equal the reference's per-class loop,
values and gradients."""

from __future__ import annotations

import pytest
import torch

from lightning_dd.augment import DSA
from lightning_dd.losses import class_chunks, distribution_matching, mean_embedding_distance, real_class_means
from lightning_dd.networks import create_network, reinitialize_


def reference_loop(net, real, syn, dsa, params):
    """The reference main_DM.py inner loop, written out naively: one class at a time, float64 accumulation."""
    total = torch.zeros((), dtype=torch.float64)
    for c in range(real.shape[0]):
        xr, xs = real[c], syn[c]
        if dsa is not None:
            xr = dsa.apply(xr, params[c : c + 1])
            xs = dsa.apply(xs, params[c : c + 1])
        mr = net.embed(xr).detach().mean(dim=0)
        ms = net.embed(xs).mean(dim=0)
        total = total + torch.sum((mr - ms).double() ** 2)
    return total


def dm_loss(net, real, syn, dsa, params, classes_per_forward):
    return distribution_matching(net, real, syn, dsa or DSA("none"), params, classes_per_forward).loss


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    num_classes, k, ipc = 5, 6, 3
    real = torch.randn(num_classes, k, 3, 16, 16, generator=g)
    syn = torch.randn(num_classes, ipc, 3, 16, 16, generator=g, requires_grad=True)
    net = reinitialize_(create_network("convnet", 3, num_classes, (16, 16), width=16), g)
    net.requires_grad_(False)
    return net, real, syn


@pytest.mark.parametrize("use_dsa", [False, True])
@pytest.mark.parametrize("classes_per_forward", [1, 2, 5])
def test_chunked_and_batched_equal_per_class_loop(setup, use_dsa, classes_per_forward):
    net, real, syn = setup
    dsa = DSA("color_crop_cutout_flip_scale_rotate") if use_dsa else None
    params = dsa.sample(real.shape[0], torch.Generator().manual_seed(3), image_size=(16, 16)) if dsa else None
    expected = reference_loop(net, real, syn, dsa, params)
    (g_expected,) = torch.autograd.grad(expected, syn)
    loss = dm_loss(net, real, syn, dsa, params, classes_per_forward)
    (g_loss,) = torch.autograd.grad(loss, syn)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(g_loss, g_expected, rtol=1e-4, atol=1e-7)
    assert g_loss.abs().sum() > 0


def test_class_chunks_cover_all_classes():
    assert class_chunks(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert class_chunks(10, 10) == [(0, 10)]
    assert class_chunks(4, 1) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(ValueError, match="classes_per_forward"):
        class_chunks(4, 0)


def test_views_are_the_augmented_images_and_maps_of_the_same_forward(setup):
    net, real, syn = setup
    dsa = DSA("color_crop_cutout_flip_scale_rotate")
    params = dsa.sample(real.shape[0], torch.Generator().manual_seed(3), image_size=(16, 16))
    out = distribution_matching(net, real, syn, dsa, params, 2, keep_augmented=True, keep_feature_maps=True)
    plain = distribution_matching(net, real, syn, dsa, params, 2)
    assert out.loss.item() == pytest.approx(plain.loss.item(), rel=1e-6)
    flat = syn.flatten(0, 1)
    expected_aug = torch.cat([dsa.apply(flat[c * 3 : (c + 1) * 3], params[c : c + 1]) for c in range(5)])
    torch.testing.assert_close(out.augmented, expected_aug)
    torch.testing.assert_close(out.syn_feature_maps, net.feature_map(expected_aug))
    assert out.real_feature_maps.shape[0] == 5 * 6 and not out.real_feature_maps.requires_grad


def test_loss_is_zero_when_synthetic_equals_real_without_augmentation(setup):
    net, real, _ = setup
    assert dm_loss(net, real, real.clone(), None, None, 5).item() == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("per_forward", [1, 4, 5, 6, 100])
def test_real_images_in_smaller_forwards_give_the_same_loss(setup, per_forward):
    net, real, syn = setup
    dsa = DSA("color_crop_cutout_flip_scale_rotate")
    params = dsa.sample(real.shape[0], torch.Generator().manual_seed(3), image_size=(16, 16))
    whole = distribution_matching(net, real, syn, dsa, params, 1, keep_feature_maps=True)
    parts = distribution_matching(net, real, syn, dsa, params, 1, keep_feature_maps=True,
                                  real_images_per_forward=per_forward)
    torch.testing.assert_close(parts.loss, whole.loss, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(parts.real_feature_maps, whole.real_feature_maps, rtol=1e-6, atol=1e-6)
    (g_parts,) = torch.autograd.grad(parts.loss, syn)
    (g_whole,) = torch.autograd.grad(whole.loss, syn)
    torch.testing.assert_close(g_parts, g_whole, rtol=1e-5, atol=1e-7)
    if per_forward >= real.shape[1]:  # one forward per class either way: bit-identical
        assert torch.equal(parts.loss, whole.loss)
    with pytest.raises(ValueError, match="real_images_per_forward"):
        distribution_matching(net, real, syn, dsa, params, 1, real_images_per_forward=0)


def test_part_sizes_never_end_with_a_lone_image():
    from lightning_dd.losses.distribution import part_sizes

    assert part_sizes(256, 16) == [16] * 16
    assert part_sizes(17, 16) == [17]
    assert part_sizes(33, 16) == [16, 17]
    assert part_sizes(18, 16) == [16, 2]
    assert part_sizes(1, 16) == [1]
    for n in range(1, 70):
        sizes = part_sizes(n, 16)
        assert sum(sizes) == n and (len(sizes) == 1 or sizes[-1] >= 2)


@pytest.mark.parametrize("batch_real", [16, 17, 18])
def test_dm_images_with_split_real_forwards_equal_the_whole_batch_bit_for_bit(batch_real, tmp_path):
    from tests.helpers import digits_data, quiet_trainer, tiny_dm

    runs = []
    for per_forward in (16, None):
        model = tiny_dm(ipc=2, network="convnet_w32", real_images_per_forward=per_forward)
        quiet_trainer(tmp_path / str(per_forward), max_steps=4).fit(model, digits_data(batch_real=batch_real))
        runs.append(model.synthetic.images.detach().clone())
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("use_dsa", [False, True])
@pytest.mark.parametrize("per_forward", [None, 4, 7])
def test_real_class_means_equal_the_per_class_loop(setup, use_dsa, per_forward):
    """IDM's batched real side: all classes' real means up front equal embedding class by class (float64 check)."""
    net, real, _ = setup
    dsa = DSA() if use_dsa else DSA("none")
    params = dsa.sample(real.shape[0], torch.Generator().manual_seed(5), image_size=(16, 16)) if use_dsa else None
    means = real_class_means(net, real, dsa, params, per_forward)
    assert means.shape == (real.shape[0], net.feature_dim) and not means.requires_grad
    for c in range(real.shape[0]):
        xr = dsa.apply(real[c], params[c : c + 1]) if use_dsa else real[c]
        expected = net.embed(xr).double().mean(0)
        torch.testing.assert_close(means[c].double(), expected, rtol=1e-5, atol=1e-6)


def test_mean_embedding_distance_and_its_gradient():
    """||m_r - mean(e_s)||^2 against the explicit sum; its gradient 2 (mean - m_r) / n on every row."""
    g = torch.Generator().manual_seed(1)
    real_mean = torch.randn(6, generator=g, dtype=torch.float64)
    syn = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    loss = mean_embedding_distance(real_mean, syn)
    mean = syn.detach().sum(0) / 4
    assert float(loss) == pytest.approx(float(sum((real_mean[d] - mean[d]) ** 2 for d in range(6))), rel=1e-12)
    loss.backward()
    torch.testing.assert_close(syn.grad, (2 * (mean - real_mean) / 4).expand(4, 6))
    assert torch.autograd.gradcheck(lambda s: mean_embedding_distance(real_mean, s), (syn.detach().requires_grad_(),))
