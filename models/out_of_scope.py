"""Out-of-scope score: relative Mahalanobis distance under Gaussians fitted to the support set.

Each class is a Gaussian around its mean support embedding with one covariance shared
by all classes (linear discriminant analysis); a second, "background" Gaussian is fitted
to the whole support set. A text's score is how much closer (in Mahalanobis distance)
it lies to its nearest class than to the background:

    score(x) = (w * d_background(x) - min_c d_c(x)) / dim,   w = classes / (classes + 5)

Ren et al. 2021, "A Simple Fix to Mahalanobis Distance for Improving Near-OOD
Detection", show the background term removes what the class distance shares with
any text (length, genericity); on CLINC150 with 10 shots it lifts out-of-scope AUROC
over the max cosine to the adapted head (docs/benchmarks.md). Ren et al. fit the
background to broad data; a task's own support set is a good stand-in only when it
spans many labels. With two or three close labels the background nearly equals the
class Gaussians and cancels the distance of a far-away text, so its weight ``w``
grows with the number of labels (on CLINC150 subsets of 2 to 150 labels, this matched
the better of the plain and the relative score at every size).

Covariances from a few dozen examples are noisy, so each is shrunk toward a multiple
of the identity (Ledoit-Wolf style) and kept as a low-rank-plus-isotropic precision:
an adapter stays small (``rank x dim`` floats, not ``dim x dim``) and scoring costs a
few small matrix products. Higher scores mean more in scope.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

DEFAULT_SHRINKAGE = 0.9
DEFAULT_RANK = 64
BACKGROUND_HALF_WEIGHT = 5  # labels at which the background counts half


@dataclass(frozen=True)
class LowRankPrecision:
    """The precision ``(I - basis diag(coef) basis^T) / noise`` of the covariance
    ``noise * I + basis diag(spread) basis^T`` (``coef = spread / (noise + spread)``)."""

    basis: torch.Tensor  # [dim, rank], orthonormal columns
    coef: torch.Tensor  # [rank], in [0, 1)
    noise: float
    # The fit's example count and shrinkage, for leave-one-out; known at fitting time
    # only (not serialised), which is where leave-one-out is used.
    examples: int = 0
    shrinkage: float = 1.0

    def distances(self, points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis distances ``[n, c]`` from each point to each centre."""
        squared = (points**2).sum(-1, keepdim=True) + (centres**2).sum(-1) - 2 * points @ centres.T
        p, q = points @ self.basis, centres @ self.basis
        along = (p**2) @ self.coef[:, None] + ((q**2) @ self.coef)[None, :] - 2 * (p * self.coef) @ q.T
        return (squared - along).clamp_min(0) / self.noise

    def apply(self, vectors: torch.Tensor) -> torch.Tensor:
        """``P v`` for each row ``v``."""
        return (vectors - ((vectors @ self.basis) * self.coef) @ self.basis.T) / self.noise

    def held_out_distances(self, points: torch.Tensor, centres: torch.Tensor, own: torch.Tensor,
                           group_sizes: torch.Tensor) -> torch.Tensor:
        """Squared distances ``[n, c]`` from fitted examples to every centre as if each
        example had been left out of the fit; ``own`` is each example's centre (column).

        Leaving out one of ``m`` members of a group moves its centre away by
        ``k = m / (m - 1)`` times the residual ``r`` and removes ``k r r'`` from the
        scatter: a rank-one downdate of the covariance, so by Sherman-Morrison every
        distance grows to ``d'Pd + w (d'Pr)^2 / (1 - w r'Pr)`` with
        ``w = (1 - shrinkage) k / n``; the covariance is also rescaled from ``n`` to
        ``n - 1`` examples, and its isotropic part shrinks with the scatter's trace
        (applied to the whole distance: approximate). Without this, an example's own
        residual lies in directions the covariance learned from it, and with few examples
        per dimension held-out scores look far better than new texts' do.

        Last, the distance to the own centre is brought from a mean of ``m - 1`` examples
        to the full fit's mean of ``m``: a new member's expected squared distance to a
        mean of ``m`` is ``(1 + 1/m)`` times the spread, so the held-out one is scaled
        by ``(1 + 1/m) / (1 + 1/(m - 1)) = (m^2 - 1) / m^2`` (0.75 for a label with two
        examples, 0.99 with ten). Without it, labels with two or three examples make
        held-out scores far worse than new texts' and the threshold rejects nothing."""
        n, dim = max(self.examples, 2), points.shape[1]
        rows = torch.arange(len(points), device=points.device)
        k = group_sizes / (group_sizes - 1)
        residuals = points - centres[own]
        precise = self.apply(residuals)
        quadratic = (residuals * precise).sum(-1)
        distances = self.distances(points, centres)
        cross = (points * precise).sum(-1, keepdim=True) - precise @ centres.T
        distances[rows, own] = k**2 * quadratic
        cross[rows, own] = k * quadratic
        weight = (1 - self.shrinkage) * k / n
        downdated = distances + (weight / (1 - weight * quadratic).clamp_min(1e-3))[:, None] * cross**2
        downdated[rows, own] *= (group_sizes**2 - 1) / group_sizes**2
        trace_share = k * (residuals**2).sum(-1) * self.shrinkage / (n * dim * self.noise)
        return ((n - 1) / n / (1 - trace_share).clamp_min(0.5))[:, None] * downdated


def fit_precision(residuals: torch.Tensor, fallback_variance: float, shrinkage: float = DEFAULT_SHRINKAGE,
                  rank: int = DEFAULT_RANK) -> LowRankPrecision:
    """Shrunk precision of the scatter of ``residuals`` ``[n, dim]`` (already centred).
    Without any spread (every class a single example) the isotropic part uses
    ``fallback_variance`` per dimension."""
    dim = residuals.shape[1]
    covariance = residuals.T @ residuals / max(len(residuals), 1)
    variance = float(covariance.diagonal().mean())
    if variance <= 1e-12:
        variance = fallback_variance
    try:
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    except torch.linalg.LinAlgError:
        # float32 LAPACK gives up on some low-rank scatters with many repeated zero
        # eigenvalues (two labels from one text each); float64 converges, at twice the cost.
        eigenvalues, eigenvectors = (t.to(covariance.dtype) for t in torch.linalg.eigh(covariance.double()))
    # A scatter of n residuals has at most n nonzero eigenvalues; directions without
    # spread have coefficient 0 and need no storage (a small task's adapter stays small).
    spread_rank = int((eigenvalues > eigenvalues[-1].clamp_min(1e-12) * 1e-6).sum())
    keep = max(1, min(rank, dim, spread_rank))
    spread = (1 - shrinkage) * eigenvalues[-keep:].clamp_min(0)
    noise = shrinkage * variance
    return LowRankPrecision(eigenvectors[:, -keep:].contiguous(), spread / (noise + spread), noise,
                            len(residuals), shrinkage)


def class_means(embeddings: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean embedding per class ``[num_classes, dim]`` (zero for an empty class); differentiable."""
    sums = torch.zeros(num_classes, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    counts = torch.bincount(targets, minlength=num_classes).clamp_min(1).to(embeddings.dtype)
    return sums.index_add(0, targets, embeddings) / counts[:, None]


def background_weight(classes: int) -> float:
    """The background term's weight for a task of ``classes`` labels (see the module docstring)."""
    return classes / (classes + BACKGROUND_HALF_WEIGHT)


def relative_score(nearest: torch.Tensor, background: torch.Tensor, weight: float, dim: int) -> torch.Tensor:
    """The score from squared distances to the nearest class and to the background."""
    return (weight * background - nearest) / dim


@dataclass(frozen=True)
class OutOfScopeModel:
    """Class means, their shared precision and the background Gaussian of a task."""

    means: torch.Tensor  # [classes, dim]
    within: LowRankPrecision
    background_mean: torch.Tensor  # [dim]
    background: LowRankPrecision
    background_weight: float = 1.0

    def scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """In-scope score per row (higher: more in scope), in the model's precision."""
        embeddings = embeddings.to(self.means.device, self.means.dtype)
        return self._combine(embeddings, self.within.distances(embeddings, self.means))

    def _combine(self, embeddings: torch.Tensor, class_distances: torch.Tensor,
                 background: torch.Tensor | None = None) -> torch.Tensor:
        if background is None:
            background = self.background.distances(embeddings, self.background_mean[None]).squeeze(-1)
        return relative_score(class_distances.min(dim=-1).values, background, self.background_weight,
                              embeddings.shape[1])

    def leave_one_out_scores(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Scores of the support examples (the ones this model was fitted on), each as
        if left out: its class mean without it, and both covariances downdated (see
        :meth:`LowRankPrecision.held_out_distances`); only classes with at least two
        examples count. These held-out in-scope scores set the rejection threshold."""
        counts = torch.bincount(targets, minlength=len(self.means))
        keep = counts[targets] >= 2
        x, y = embeddings[keep].float(), targets[keep]
        sizes = counts[y].to(x.dtype)
        distances = self.within.held_out_distances(x, self.means, y, sizes)
        background = self.background.held_out_distances(
            x, self.background_mean[None], torch.zeros_like(y), torch.full_like(sizes, len(targets))
        ).squeeze(-1)
        return self._combine(x, distances, background)

    def tensors(self, prefix: str = "oos.") -> dict[str, torch.Tensor]:
        scalars = torch.tensor([self.within.noise, self.background.noise, self.background_weight], dtype=self.means.dtype)
        return {
            f"{prefix}means": self.means, f"{prefix}within_basis": self.within.basis,
            f"{prefix}within_coef": self.within.coef, f"{prefix}background_mean": self.background_mean,
            f"{prefix}background_basis": self.background.basis, f"{prefix}background_coef": self.background.coef,
            f"{prefix}scalars": scalars,
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str = "oos.") -> "OutOfScopeModel":
        within_noise, background_noise, background_weight = tensors[f"{prefix}scalars"].tolist()
        return cls(
            tensors[f"{prefix}means"],
            LowRankPrecision(tensors[f"{prefix}within_basis"], tensors[f"{prefix}within_coef"], within_noise),
            tensors[f"{prefix}background_mean"],
            LowRankPrecision(tensors[f"{prefix}background_basis"], tensors[f"{prefix}background_coef"], background_noise),
            background_weight,
        )

    def to(self, device: torch.device | str) -> "OutOfScopeModel":
        """The same model on ``device`` (fit-time fields such as ``examples`` kept)."""
        def moved(precision: LowRankPrecision) -> LowRankPrecision:
            return replace(precision, basis=precision.basis.to(device), coef=precision.coef.to(device))

        return replace(self, means=self.means.to(device), within=moved(self.within),
                       background_mean=self.background_mean.to(device), background=moved(self.background))


def fit_out_of_scope(embeddings: torch.Tensor, targets: torch.Tensor, num_classes: int,
                     shrinkage: float = DEFAULT_SHRINKAGE, rank: int = DEFAULT_RANK) -> OutOfScopeModel:
    """Fit class means, the shared within-class precision and the background Gaussian."""
    x = embeddings.float()
    means = class_means(x, targets, num_classes)
    background_mean = x.mean(0)
    background_residuals = x - background_mean
    # Unit vectors in random directions vary by 1/dim per coordinate: the last resort.
    spread = float((background_residuals**2).sum(-1).mean()) / x.shape[1] if len(x) > 1 else 1.0 / x.shape[1]
    spread = spread if spread > 1e-12 else 1.0 / x.shape[1]
    within = fit_precision(x - means[targets], spread, shrinkage, rank)
    background = fit_precision(background_residuals, spread, shrinkage, rank)
    classes = int((torch.bincount(targets, minlength=num_classes) > 0).sum())
    return OutOfScopeModel(means, within, background_mean, background, background_weight(classes))
