"""ZCA whitening of images, as MTT uses it (``GeorgeCazenavette/mtt-distillation: utils.py get_dataset``).

MTT fits ``kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True)`` on the whole train split after ``ToTensor()``
only (pixels in [0, 1], no mean/std normalisation) and applies it to the train and test images; the inverse is used
for visualisation only. The transform, written with the images flattened to rows of ``D = C * H * W`` values in
``(C, H, W)`` order (kornia's ``dim=0``)::

    mu    = mean of the N training rows                                   (1, D)
    Sigma = (X - mu)^T (X - mu) / (N - 1)                                 (D, D)   kornia's ``unbiased=True``
    Sigma = U diag(S) U^T                                                 (eigendecomposition; kornia: SVD)
    T     = U diag(1 / sqrt(S + eps)) U^T,   T_inv = U diag(sqrt(S + eps)) U^T
    whiten(x)  = (x - mu) T
    inverse(y) = y T_inv + mu                                             (kornia: (y + mu T) T_inv, the same map)

so the whitened training rows have covariance ``U diag(S / (S + eps)) U^T``. ``eps`` is added to the eigenvalues
(a regulariser, not a tiny stabiliser: with ``eps = 0.1`` directions of variance below 0.1 are barely amplified).

Here the covariance is accumulated in float64 in chunks (50 000 CIFAR images never need a float copy at once) and
decomposed with ``torch.linalg.eigh``, which for a symmetric positive semi-definite matrix gives the same ``U`` and
``S`` as kornia's SVD up to rounding (round-off eigenvalues below zero are set to zero; kornia's SVD returns their
absolute values, a difference of ~1e-17 next to ``eps``). The state (mean, eigenvectors, eigenvalues, eps) is kept
in float32, the precision it is stored with, so a fitted ZCA and one rebuilt from its state transform identically.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import torch
from torch import Tensor

STATE_KEYS: tuple[str, ...] = ("mean", "eigenvectors", "eigenvalues", "eps")
"""Keys of :meth:`ZCA.state_dict`."""

_STATE_DTYPE = torch.float32


def _unit_pixels(images: Tensor, what: str) -> Tensor:
    """``uint8`` in [0, 255] -> float32 in [0, 1]; floating point is returned unchanged (no copy)."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.is_floating_point():
        return images
    raise TypeError(f"{what} must be uint8 or floating point, got {images.dtype}")


def _compute_device(device: torch.device) -> torch.device:
    """Where float64 linear algebra can run for tensors living on ``device`` (MPS has no float64)."""
    return torch.device("cpu") if device.type == "mps" else device


class ZCA:
    """A fitted ZCA whitening transform of ``(C, H, W)`` images (see the module docstring for the math).

    Build it with :meth:`fit` (from training images) or :meth:`from_state` (from :meth:`state_dict`). The constructor
    takes the state directly and validates it.

    Args:
        mean: per-pixel mean of the training images, ``(C, H, W)``, in [0, 1] pixel units.
        eigenvectors: ``U``, ``(D, D)`` with ``D = C * H * W``; column ``i`` is the eigenvector of ``eigenvalues[i]``.
        eigenvalues: ``S``, ``(D,)``, non-negative (pixel units squared).
        eps: the regulariser added to the eigenvalues (> 0; MTT: 0.1).

    The state is stored as float32 on the CPU. The whitening matrices are computed lazily in float64 on the device
    of the data and cached per ``(device, dtype)``.
    """

    def __init__(self, mean: Tensor, eigenvectors: Tensor, eigenvalues: Tensor, eps: float) -> None:
        for name, value in (("mean", mean), ("eigenvectors", eigenvectors), ("eigenvalues", eigenvalues)):
            if not isinstance(value, Tensor) or not value.is_floating_point():
                raise TypeError(f"ZCA {name} must be a floating-point tensor, got {type(value).__name__} "
                                f"{getattr(value, 'dtype', '')}".rstrip())
        if mean.ndim != 3 or any(s < 1 for s in mean.shape):
            raise ValueError(f"ZCA mean must be (C, H, W), got shape {tuple(mean.shape)}")
        d = mean.numel()
        if tuple(eigenvectors.shape) != (d, d):
            raise ValueError(f"ZCA eigenvectors must be (D, D) = ({d}, {d}) for images {tuple(mean.shape)}, "
                             f"got {tuple(eigenvectors.shape)}")
        if tuple(eigenvalues.shape) != (d,):
            raise ValueError(f"ZCA eigenvalues must be (D,) = ({d},) for images {tuple(mean.shape)}, "
                             f"got {tuple(eigenvalues.shape)}")
        eps = float(eps)
        if not math.isfinite(eps) or eps <= 0:
            raise ValueError(f"ZCA eps must be a finite number > 0, got {eps}")
        for name, value in (("mean", mean), ("eigenvectors", eigenvectors), ("eigenvalues", eigenvalues)):
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"ZCA {name} contains non-finite values")
        if bool((eigenvalues < 0).any()):
            raise ValueError(
                f"ZCA eigenvalues must be >= 0 (a covariance), got a minimum of {float(eigenvalues.min())}"
            )
        self.mean = mean.detach().to("cpu", _STATE_DTYPE).clone()
        self.eigenvectors = eigenvectors.detach().to("cpu", _STATE_DTYPE).clone()
        self.eigenvalues = eigenvalues.detach().to("cpu", _STATE_DTYPE).clone()
        self.eps = eps
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor, Tensor]] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    @torch.no_grad()
    def fit(
        cls,
        images: Tensor,
        eps: float = 0.1,
        batch_size: int = 4096,
        unbiased: bool = True,
        device: torch.device | str | None = None,
    ) -> ZCA:
        """Fit on training images (MTT: the whole train split).

        Args:
            images: ``(N, C, H, W)``, ``uint8`` in [0, 255] (divided by 255) or floating point in [0, 1] (the
                ``ToTensor`` scale; normalised images are refused), ``N >= 2``.
            eps: regulariser added to the covariance eigenvalues (MTT/kornia call: 0.1).
            batch_size: images per chunk of the float64 accumulation (memory: ``batch_size * D`` float64 values).
            unbiased: divide the covariance by ``N - 1`` (kornia's default, used by MTT) instead of ``N``.
            device: where to accumulate and decompose (default: the images' device); chunks are moved there.

        Returns:
            The fitted :class:`ZCA`. Deterministic (no randomness).
        """
        if not isinstance(images, Tensor) or images.ndim != 4:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"ZCA.fit needs images (N, C, H, W), got {shape}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise TypeError(f"ZCA.fit needs uint8 or floating-point images, got {images.dtype}")
        n = int(images.shape[0])
        if n < (2 if unbiased else 1):
            raise ValueError(f"ZCA.fit needs at least {2 if unbiased else 1} images (unbiased={unbiased}), got {n}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        eps = float(eps)
        if not math.isfinite(eps) or eps <= 0:
            raise ValueError(f"ZCA eps must be a finite number > 0, got {eps}")
        work = _compute_device(torch.device(device) if device is not None else images.device)
        shape = tuple(int(s) for s in images.shape[1:])
        d = math.prod(shape)

        def chunks() -> list[slice]:
            return [slice(i, i + int(batch_size)) for i in range(0, n, int(batch_size))]

        def rows(part: slice) -> Tensor:  # (n_chunk, D) float64 pixel values in [0, 1]
            chunk = images[part].to(work)
            if chunk.dtype == torch.uint8:
                return chunk.reshape(chunk.shape[0], d).to(torch.float64).div_(255.0)
            return chunk.reshape(chunk.shape[0], d).to(torch.float64)

        total = torch.zeros(d, dtype=torch.float64, device=work)
        for part in chunks():
            x = rows(part)
            if images.is_floating_point():
                lo, hi = float(x.min()), float(x.max())
                if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0.0 or hi > 1.0:
                    raise ValueError(
                        f"ZCA.fit needs pixels in [0, 1] (ToTensor scale, no mean/std normalisation) or uint8, "
                        f"got floating-point values in [{lo}, {hi}]"
                    )
            total += x.sum(dim=0)
        mean = total / n
        cov = torch.zeros(d, d, dtype=torch.float64, device=work)
        for part in chunks():  # second pass on centred rows: no cancellation of E[xx^T] - mu mu^T
            x = rows(part).sub_(mean)
            cov.addmm_(x.T, x)
        cov /= float(n - 1 if unbiased else n)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        # descending order, like an SVD; round-off negatives -> 0
        eigenvalues = eigenvalues.flip(0).clamp_min_(0.0)
        eigenvectors = eigenvectors.flip(1)
        return cls(mean.reshape(shape), eigenvectors, eigenvalues, eps)

    def state_dict(self) -> dict[str, Tensor]:
        """The compact state, CPU float32 tensors (``eps`` as a float64 scalar); loads with ``weights_only=True``.

        Keys: ``mean`` ``(C, H, W)``, ``eigenvectors`` ``(D, D)``, ``eigenvalues`` ``(D,)``, ``eps`` ``()``.
        """
        return {
            "mean": self.mean.clone(),
            "eigenvectors": self.eigenvectors.clone(),
            "eigenvalues": self.eigenvalues.clone(),
            "eps": torch.tensor(self.eps, dtype=torch.float64),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Tensor]) -> ZCA:
        """Rebuild from :meth:`state_dict` (e.g. ``DistilledSet.zca`` or a checkpoint); validates keys and shapes."""
        if not isinstance(state, Mapping):
            raise TypeError(f"ZCA state must be a mapping with keys {STATE_KEYS}, got {type(state).__name__}")
        missing = [k for k in STATE_KEYS if k not in state]
        unknown = sorted(set(state) - set(STATE_KEYS))
        if missing or unknown:
            raise ValueError(f"ZCA state must have exactly the keys {STATE_KEYS}; missing {missing}, unknown {unknown}")
        eps = state["eps"]
        if isinstance(eps, Tensor) and eps.numel() != 1:
            raise ValueError(f"ZCA state eps must be a scalar, got shape {tuple(eps.shape)}")
        return cls(state["mean"], state["eigenvectors"], state["eigenvalues"], float(eps))

    def fingerprint(self) -> str:
        """A short hex digest of the state (SHA-256 of its float32 bytes and ``eps``): equal states, equal strings.

        Files that must be used with the same whitening (MTT expert buffers) record it instead of the 37 MB state.
        """
        digest = hashlib.sha256()
        for t in (self.mean, self.eigenvectors, self.eigenvalues):
            digest.update(t.contiguous().numpy().tobytes())
        digest.update(repr(self.eps).encode())
        return digest.hexdigest()[:16]

    # ------------------------------------------------------------------ properties

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images this ZCA applies to."""
        c, h, w = self.mean.shape
        return int(c), int(h), int(w)

    @property
    def dim(self) -> int:
        """``D = C * H * W``."""
        return self.mean.numel()

    def __repr__(self) -> str:
        return f"ZCA(image_shape={self.image_shape}, eps={self.eps})"

    def __getstate__(self) -> dict[str, object]:  # pickling (e.g. DDP spawn) leaves the matrix cache behind
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    # ------------------------------------------------------------------ the transform

    def matrices(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[Tensor, ...]:
        """``(mean (1, D), T (D, D), T_inv (D, D))`` on ``device`` in ``dtype``, computed in float64, cached.

        ``T = U diag((S + eps)^-1/2) U^T`` and ``T_inv = T^-1`` (mathematically ``U diag((S + eps)^1/2) U^T``).
        """
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        key = (device, dtype)
        if key not in self._cache:
            work = _compute_device(device)
            u = self.eigenvectors.to(work, torch.float64)
            s = self.eigenvalues.to(work, torch.float64) + self.eps
            with torch.autocast(work.type, enabled=False):
                t = (u * s.rsqrt()) @ u.T
                # = U diag(sqrt(S + eps)) U^T for an orthonormal U; inverting T instead keeps inverse(transform(x))
                # == x to float64 rounding although U was stored in float32 (orthonormal only to ~1e-7)
                t_inv = torch.linalg.inv(t)
            mean = self.mean.to(work, torch.float64).reshape(1, -1)
            self._cache[key] = (mean.to(device, dtype), t.to(device, dtype), t_inv.to(device, dtype))
        return self._cache[key]

    def _apply(self, x: Tensor, inverse: bool) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"ZCA of {self.image_shape} images needs (B, {', '.join(map(str, self.image_shape))}), "
                             f"got {shape}")
        x = _unit_pixels(x, "ZCA input") if not inverse else x
        if not x.is_floating_point():
            raise TypeError(f"ZCA.inverse needs floating-point input, got {x.dtype}")
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        mean, t, t_inv = self.matrices(x.device, dtype)
        flat = x.reshape(x.shape[0], self.dim).to(dtype)  # explicit D: an empty batch (MTT) has no -1
        with torch.autocast(x.device.type, enabled=False):
            out = flat @ t_inv + mean if inverse else (flat - mean) @ t
        return out.reshape(x.shape).to(x.dtype)

    def transform(self, x: Tensor) -> Tensor:
        """Whiten ``x`` ``(B, C, H, W)``: ``uint8`` in [0, 255] or floating point in [0, 1] pixel units.

        Returns the whitened images, same shape; float32 for ``uint8`` input, else ``x.dtype`` (float16/bfloat16 are
        computed in float32, as kornia does). Differentiable in ``x``; autocast is disabled inside.
        """
        return self._apply(x, inverse=False)

    __call__ = transform

    def inverse(self, x: Tensor) -> Tensor:
        """Map whitened images ``(B, C, H, W)`` back to [0, 1] pixel units (not clamped); same dtype as ``x``."""
        return self._apply(x, inverse=True)
