"""The per-task classifier head: a cosine classifier over frozen sentence embeddings.

logits = scale * cos(x, w_c) + b_c. It is initialised from the class prototypes (the
mean support embedding of each class, as in Prototypical Networks, Snell et al. 2017),
so that before any gradient step it already is a nearest-prototype classifier.
Parameters are a plain dict of tensors (the ``torch.func`` idiom): no module state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

HeadParams = dict[str, torch.Tensor]


def prototypes(embeddings: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Unit-norm mean embedding per class, ``[num_classes, dim]``; an empty class stays zero."""
    sums = torch.zeros(num_classes, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, targets, embeddings)
    return F.normalize(sums, dim=-1)


def prototype_init(embeddings: torch.Tensor, targets: torch.Tensor, num_classes: int) -> HeadParams:
    """Head parameters that reproduce the nearest-prototype classifier."""
    weight = prototypes(embeddings, targets, num_classes)
    return {"weight": weight, "bias": torch.zeros(num_classes, dtype=weight.dtype, device=weight.device)}


def head_logits(params: HeadParams, embeddings: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """Scaled cosine similarities plus a per-class bias, ``[n, num_classes]``."""
    weight = F.normalize(params["weight"], dim=-1)
    return scale * F.normalize(embeddings, dim=-1) @ weight.T + params["bias"]


def head_probabilities(params: HeadParams, embeddings: torch.Tensor, scale: float | torch.Tensor,
                       temperature: float = 1.0) -> torch.Tensor:
    """Class probabilities: the softmax of the logits divided by ``temperature``."""
    return (head_logits(params, embeddings, scale) / temperature).softmax(dim=-1)


def refine_with_unlabelled(anchors: torch.Tensor, pool: torch.Tensor, scale: float = 20.0, anchor_weight: float = 0.5,
                           iterations: int = 10) -> torch.Tensor:
    """Prototypes moved toward the unlabelled texts they claim (soft k-means from ``anchors``).

    Semi-supervised prototypical networks (Ren et al. 2018): each step assigns every
    unlabelled embedding in ``pool`` softly to the prototypes, ``p(c | x) = softmax(scale *
    cos(x, mu_c))``, and sets ``mu_c = normalise(anchor_weight * anchor_c + normalise(mean_x
    p(c | x) x))``. The anchor (a label name's embedding, or its examples' prototype) keeps a
    prototype from drifting to another label's cluster; without it and at a low scale the
    prototypes collapse onto one centre. Defaults: chosen on CLINC150 (see
    ``benchmarks/explorations/zero_shot_unlabelled.py``). Returns ``[classes, dim]``, unit norm.
    """
    anchors = F.normalize(anchors, dim=-1)
    if len(pool) == 0:
        return anchors
    pool = F.normalize(pool.to(anchors.dtype), dim=-1)
    refined = anchors
    for _ in range(iterations):
        responsibility = torch.softmax(scale * pool @ refined.T, dim=-1)
        centres = responsibility.T @ pool / responsibility.sum(0).clamp_min(1e-6)[:, None]
        refined = F.normalize(anchor_weight * anchors + F.normalize(centres, dim=-1), dim=-1)
    return refined
