"""ZCA whitening: against a float64 numpy reference (SVD of the centred data), its algebraic identities, the state
round trip, validation, and (when kornia is installed) the exact transform MTT uses."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lightning_dd.augment.zca import STATE_KEYS, ZCA
from lightning_dd.data.registry import load_split


@pytest.fixture(scope="module")
def digits_train() -> torch.Tensor:
    """uint8 (1437, 1, 8, 8); several border pixels are always 0, so the covariance is rank deficient."""
    return load_split("digits", None, train=True).images


@pytest.fixture(scope="module")
def rgb() -> torch.Tensor:
    """uint8 (600, 3, 6, 5) with correlated channels (a shared per-image colour plus pixel noise)."""
    g = torch.Generator().manual_seed(0)
    base = torch.rand(600, 3, 1, 1, generator=g)
    pixels = 0.6 * base + 0.4 * torch.rand(600, 3, 6, 5, generator=g)
    return (pixels * 255).round().to(torch.uint8)


def reference(images: torch.Tensor, eps: float, unbiased: bool = True) -> dict[str, np.ndarray]:
    """Naive float64 ZCA: mean, SVD of the centred data matrix (not of a covariance), T, T_inv."""
    x = images.reshape(images.shape[0], -1).numpy().astype(np.float64) / 255.0
    mu = x.mean(axis=0, keepdims=True)
    _, sigma, vt = np.linalg.svd(x - mu, full_matrices=True)
    s = np.zeros(x.shape[1])
    s[: sigma.size] = sigma**2 / (x.shape[0] - 1 if unbiased else x.shape[0])
    u = vt.T
    return {
        "x": x, "mean": mu, "U": u, "S": s,
        "T": u @ np.diag(1.0 / np.sqrt(s + eps)) @ u.T,
        "T_inv": u @ np.diag(np.sqrt(s + eps)) @ u.T,
    }


@pytest.mark.parametrize("name", ["digits_train", "rgb"])
def test_transform_matches_float64_reference(name: str, request: pytest.FixtureRequest) -> None:
    images = request.getfixturevalue(name)
    ref = reference(images, eps=0.1)
    zca = ZCA.fit(images, eps=0.1, batch_size=97)
    x64 = torch.from_numpy(ref["x"]).reshape(images.shape)
    expected = (ref["x"] - ref["mean"]) @ ref["T"]
    np.testing.assert_allclose(zca.transform(x64).reshape(len(images), -1).numpy(), expected, atol=2e-6)
    out32 = zca.transform(images)  # uint8 in -> float32 out
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.reshape(len(images), -1).numpy(), expected, atol=2e-5)
    mean, t, t_inv = zca.matrices("cpu", torch.float64)
    np.testing.assert_allclose(mean.numpy(), ref["mean"], atol=1e-7)
    np.testing.assert_allclose(t.numpy(), ref["T"], atol=2e-6)
    np.testing.assert_allclose(t_inv.numpy(), ref["T_inv"], atol=1e-6)
    np.testing.assert_allclose(zca.eigenvalues.numpy(), ref["S"], atol=1e-7)


def test_whitened_covariance_is_u_s_over_s_plus_eps_u_t(rgb: torch.Tensor) -> None:
    eps = 0.1
    ref = reference(rgb, eps)
    y = ZCA.fit(rgb, eps=eps).transform(torch.from_numpy(ref["x"]).reshape(rgb.shape)).reshape(len(rgb), -1)
    y = y.numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-7)  # centred with the training mean
    cov = np.cov(y, rowvar=False)  # N - 1
    u, s = ref["U"], ref["S"]
    np.testing.assert_allclose(cov, u @ np.diag(s / (s + eps)) @ u.T, atol=1e-6)


def test_eps_regularises_and_unbiased_flag_scales_the_covariance(rgb: torch.Tensor) -> None:
    biased, unbiased = ZCA.fit(rgb, unbiased=False), ZCA.fit(rgb, unbiased=True)
    n = rgb.shape[0]
    torch.testing.assert_close(biased.eigenvalues, unbiased.eigenvalues * (n - 1) / n, rtol=1e-5, atol=1e-9)
    ref = reference(rgb, eps=0.1, unbiased=False)
    np.testing.assert_allclose(biased.matrices("cpu", torch.float64)[1].numpy(), ref["T"], atol=2e-6)
    # a larger eps shrinks every direction more: T(eps=1) has smaller eigenvalues than T(eps=0.1)
    strong = ZCA.fit(rgb, eps=1.0)
    ev_weak = torch.linalg.eigvalsh(unbiased.matrices("cpu", torch.float64)[1])
    ev_strong = torch.linalg.eigvalsh(strong.matrices("cpu", torch.float64)[1])
    assert bool((ev_strong < ev_weak).all())
    torch.testing.assert_close(ev_strong.min(), torch.tensor(1.0 / (float(strong.eigenvalues.max()) + 1.0) ** 0.5,
                                                           dtype=torch.float64), rtol=1e-5, atol=0)


def test_inverse_undoes_transform(digits_train: torch.Tensor, rgb: torch.Tensor) -> None:
    for images in (digits_train, rgb):
        zca = ZCA.fit(images)
        x = images.float() / 255
        torch.testing.assert_close(zca.inverse(zca.transform(x)), x, atol=1e-5, rtol=0)
        x64 = images.double() / 255
        torch.testing.assert_close(zca.inverse(zca.transform(x64)), x64, atol=1e-12, rtol=0)
        y = torch.randn(5, *zca.image_shape, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(zca.transform(zca.inverse(y)), y, atol=1e-5, rtol=0)


def test_fit_does_not_depend_on_input_dtype_or_chunking(rgb: torch.Tensor) -> None:
    a = ZCA.fit(rgb, batch_size=10_000).state_dict()
    b = ZCA.fit(rgb.double() / 255, batch_size=7).state_dict()
    c = ZCA.fit(rgb.float() / 255, batch_size=64).state_dict()
    # eigenvectors of (nearly) repeated eigenvalues are not unique; mean, eigenvalues and the matrices are
    for other in (b, c):
        for key in ("mean", "eigenvalues", "eps"):
            torch.testing.assert_close(a[key], other[key], atol=1e-7, rtol=0)
        for m, n in zip(ZCA.from_state(a).matrices(), ZCA.from_state(other).matrices(), strict=True):
            torch.testing.assert_close(m, n, atol=1e-5, rtol=0)


def test_state_round_trip_is_bit_identical(rgb: torch.Tensor) -> None:
    zca = ZCA.fit(rgb)
    buffer = io.BytesIO()
    torch.save(zca.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert set(state) == set(STATE_KEYS)
    assert state["mean"].shape == (3, 6, 5) and state["eigenvectors"].shape == (90, 90)
    assert state["eigenvalues"].shape == (90,) and float(state["eps"]) == 0.1
    rebuilt = ZCA.from_state(state)
    x = rgb[:50].float() / 255
    assert torch.equal(rebuilt.transform(x), zca.transform(x))
    assert torch.equal(rebuilt.inverse(x), zca.inverse(x))
    assert rebuilt.image_shape == (3, 6, 5) and rebuilt.dim == 90 and rebuilt.eps == 0.1
    assert rebuilt.fingerprint() == zca.fingerprint()  # equal states, equal fingerprints (expert buffers rely on it)
    assert ZCA.fit(rgb, eps=0.2).fingerprint() != zca.fingerprint()


def test_empty_batch_transforms_to_an_empty_batch(rgb: torch.Tensor) -> None:
    """MTT's iterations carry an empty real batch through the data module's ZCA encoding."""
    zca = ZCA.fit(rgb)
    empty = torch.zeros(0, 3, 6, 5, dtype=torch.uint8)
    assert zca.transform(empty).shape == (0, 3, 6, 5) and zca.inverse(empty.float()).shape == (0, 3, 6, 5)


def test_dtypes_gradients_and_cache(rgb: torch.Tensor) -> None:
    zca = ZCA.fit(rgb)
    x = rgb[:8].float() / 255
    expected = zca.transform(x)
    torch.testing.assert_close(zca.transform(rgb[:8]), expected, atol=0, rtol=0)  # uint8 == float / 255
    assert zca.transform(x.double()).dtype == torch.float64
    half = zca.transform(x.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), zca.transform(x.bfloat16().float()).bfloat16().float())
    assert zca.matrices("cpu", torch.float32)[1] is zca.matrices("cpu", torch.float32)[1]
    leaf = x.clone().requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    (zca.transform(leaf) * weights).sum().backward()
    t = zca.matrices("cpu", torch.float32)[1]  # d/dx sum(w * (x - mu) T) = w T^T
    torch.testing.assert_close(leaf.grad, (weights.reshape(8, -1) @ t.T).reshape(x.shape))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert zca.transform(x).dtype == torch.float32  # autocast does not lower the precision


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(rgb: torch.Tensor) -> None:
    zca = ZCA.fit(rgb)
    x = rgb.float() / 255
    torch.testing.assert_close(zca.transform(x.cuda()).cpu(), zca.transform(x), atol=1e-5, rtol=0)
    on_gpu = ZCA.fit(rgb, device="cuda")
    torch.testing.assert_close(on_gpu.eigenvalues, zca.eigenvalues, atol=1e-7, rtol=0)


def test_fit_refuses_bad_input(rgb: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        ZCA.fit((rgb.float() / 255 - 0.5) / 0.25)  # normalised images
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ZCA.fit(rgb[0])
    with pytest.raises(ValueError, match="at least 2 images"):
        ZCA.fit(rgb[:1])
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0, got 0\.0"):
        ZCA.fit(rgb, eps=0.0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        ZCA.fit(rgb, batch_size=0)
    with pytest.raises(TypeError, match="uint8 or floating-point"):
        ZCA.fit(rgb.long())


def test_state_and_transform_validation(rgb: torch.Tensor) -> None:
    zca = ZCA.fit(rgb)
    state = zca.state_dict()
    with pytest.raises(ValueError, match=r"missing \['eps'\]"):
        ZCA.from_state({k: v for k, v in state.items() if k != "eps"})
    with pytest.raises(ValueError, match=r"unknown \['extra'\]"):
        ZCA.from_state({**state, "extra": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"eigenvectors must be \(D, D\) = \(90, 90\)"):
        ZCA.from_state({**state, "eigenvectors": torch.zeros(89, 89)})
    with pytest.raises(ValueError, match=r"eigenvalues must be \(D,\) = \(90,\)"):
        ZCA.from_state({**state, "eigenvalues": torch.zeros(3)})
    with pytest.raises(ValueError, match="eigenvalues must be >= 0"):
        ZCA.from_state({**state, "eigenvalues": state["eigenvalues"] - 1.0})
    with pytest.raises(ValueError, match="non-finite"):
        ZCA.from_state({**state, "mean": torch.full((3, 6, 5), float("nan"))})
    with pytest.raises(ValueError, match=r"mean must be \(C, H, W\)"):
        ZCA.from_state({**state, "mean": torch.zeros(90)})
    with pytest.raises(TypeError, match="mapping"):
        ZCA.from_state([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"needs \(B, 3, 6, 5\), got \(2, 3, 5, 6\)"):
        zca.transform(torch.zeros(2, 3, 5, 6))
    with pytest.raises(TypeError, match="floating-point"):
        zca.inverse(torch.zeros(2, 3, 6, 5, dtype=torch.uint8))


def test_matches_kornia_as_mtt_calls_it(digits_train: torch.Tensor, rgb: torch.Tensor) -> None:
    """``kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True).fit(images)`` on float32 [0, 1] images, as
    ``GeorgeCazenavette/mtt-distillation: utils.py`` does; skipped when kornia (not a dependency) is absent."""
    kornia = pytest.importorskip("kornia")
    for images in (digits_train, rgb):
        x = images.float() / 255
        theirs = kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True).fit(x)
        ours = ZCA.fit(images, eps=0.1)
        torch.testing.assert_close(ours.transform(x), theirs(x), atol=5e-6, rtol=0)
        y = theirs(x)
        torch.testing.assert_close(ours.inverse(y), theirs.inverse_transform(y), atol=5e-6, rtol=0)
