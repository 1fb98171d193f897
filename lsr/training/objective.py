"""What training minimises: a contrastive loss over in-batch and hard negatives, the FLOPS regulariser with the
SPLADE v2 quadratic warm-up, and MarginMSE distillation from a teacher's scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive(q: torch.Tensor, docs: torch.Tensor, judged: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE: q (B, V) against docs (N, V), where docs[i] is query i's positive and every other row (other
    queries' positives and all hard negatives) is a negative. Dot products, no temperature, as in SPLADE.

    ``judged`` (B, N), True where a row other than query i's own positive is judged relevant to query i: such a row
    is left out of that query's softmax instead of being pushed away. Collections with many judgements per query
    need it: on nfcorpus a batch of 16 holds ~4 documents that are another batch query's positive."""
    scores = q @ docs.T
    if judged is not None:
        scores = scores.masked_fill(judged, float("-inf"))
    return F.cross_entropy(scores, torch.arange(len(q), device=q.device))


def flops(weights: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser (Paria et al. 2020): sum over terms of the squared mean weight, a smooth proxy for the
    number of floating-point operations a query-document match costs."""
    return weights.mean(0).square().sum()


def splade_loss(q: torch.Tensor, docs: torch.Tensor, lambda_q: float, lambda_d: float,
                judged: torch.Tensor | None = None) -> torch.Tensor:
    """The ranking loss plus the FLOPS terms of both sides (a weight of 0 leaves a side unregularised)."""
    loss = contrastive(q, docs, judged) + lambda_d * flops(docs)
    return loss + lambda_q * flops(q) if lambda_q else loss


def margin_mse(pos: torch.Tensor, neg: torch.Tensor, teacher_pos: torch.Tensor, teacher_neg: torch.Tensor,
               known: torch.Tensor) -> torch.Tensor:
    """MarginMSE (Hofstätter et al. 2020): the student's margin s(q, d+) - s(q, d-) regressed on the teacher's,
    over the pairs where the teacher scored both documents (``known``)."""
    if not bool(known.any()):
        return pos.new_zeros(())
    return F.mse_loss((pos - neg)[known], (teacher_pos - teacher_neg)[known])


def warmup(target: float, step: int, steps: int) -> float:
    """SPLADE v2's regulariser weight at ``step``: grows quadratically from 0 to ``target`` over ``steps`` steps,
    so the vectors are not driven to zero before the ranking loss has shaped them."""
    if steps <= 0 or step >= steps:
        return target
    return target * (step / steps) ** 2
