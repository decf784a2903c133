"""Task-aligned label assignment and the detection loss.

For each ground-truth box, candidate anchor points are those inside the box (or, for boxes
smaller than a cell, within 0.75 stride of its centre). Among them the ``topk`` with the
highest alignment ``score**alpha * iou**beta`` become positives; an anchor claimed by two
boxes goes to the one it overlaps most. Class targets are soft (alignment normalised to the
box's best IoU), so scores learn to rank by localisation quality. Loss: BCE on classes,
GIoU on boxes, both weighted by the soft targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of broadcastable xyxy boxes ``a[..., 4]`` and ``b[..., 4]``."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + eps)


def giou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Generalised IoU of matching xyxy boxes."""
    iou = pairwise_iou(a, b, eps)
    lt = torch.minimum(a[..., :2], b[..., :2])
    rb = torch.maximum(a[..., 2:], b[..., 2:])
    hull = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    inter = iou * (area_a + area_b) / (1 + iou)
    union = area_a + area_b - inter
    return iou - (hull - union) / (hull + eps)


@torch.no_grad()
def assign(
    scores: torch.Tensor,
    pboxes: torch.Tensor,
    anchors: torch.Tensor,
    strides: torch.Tensor,
    gt_cls: torch.Tensor,
    gt_box: torch.Tensor,
    topk: int = 10,
    alpha: float = 1.0,
    beta: float = 6.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets for one batch.

    scores ``[B, A, C]`` (sigmoid), pboxes ``[B, A, 4]``, anchors ``[A, 2]``, strides ``[A]``,
    gt_cls ``[B, M]`` (-1 = padding), gt_box ``[B, M, 4]``. Returns target boxes
    ``[B, A, 4]``, soft class targets ``[B, A, C]`` and the foreground mask ``[B, A]``.
    """
    b, a, c = scores.shape
    m = gt_box.shape[1]
    if m == 0:
        return (
            pboxes.new_zeros(b, a, 4),
            scores.new_zeros(b, a, c),
            torch.zeros(b, a, dtype=torch.bool, device=scores.device),
        )
    valid = gt_cls >= 0  # [B, M]
    ax = anchors[:, 0].view(1, 1, a)
    ay = anchors[:, 1].view(1, 1, a)
    st = strides.view(1, 1, a)
    x1, y1, x2, y2 = (gt_box[..., i].unsqueeze(-1) for i in range(4))
    inside = (ax > x1) & (ax < x2) & (ay > y1) & (ay < y2)
    near = ((ax - (x1 + x2) / 2).abs() < 0.75 * st) & ((ay - (y1 + y2) / 2).abs() < 0.75 * st)
    cand = (inside | near) & valid.unsqueeze(-1)  # [B, M, A]
    iou = pairwise_iou(gt_box.unsqueeze(2), pboxes.unsqueeze(1)).clamp(min=0)  # [B, M, A]
    cls_idx = gt_cls.clamp(min=0).unsqueeze(-1).expand(b, m, a)
    s = scores.permute(0, 2, 1).gather(1, cls_idx)  # [B, M, A]
    metric = s.pow(alpha) * iou.pow(beta) * cand
    k = min(topk, a)
    top = metric.topk(k, dim=-1).indices
    mask = torch.zeros_like(metric, dtype=torch.bool).scatter_(-1, top, True) & cand
    multi = mask.sum(1, keepdim=True) > 1  # [B, 1, A]
    best = F.one_hot(iou.argmax(1), m).permute(0, 2, 1).bool()  # [B, M, A]
    mask = torch.where(multi, best & cand, mask)
    fg = mask.any(1)  # [B, A]
    idx = mask.float().argmax(1)  # [B, A]
    tgt_box = gt_box.gather(1, idx.unsqueeze(-1).expand(b, a, 4))
    tgt_cls = gt_cls.clamp(min=0).gather(1, idx)
    metric = metric * mask
    align_max = metric.amax(-1, keepdim=True)
    iou_max = (iou * mask).amax(-1, keepdim=True)
    norm = (metric * iou_max / (align_max + 1e-9)).amax(1)  # [B, A]
    tgt_scores = F.one_hot(tgt_cls, c).float() * (norm * fg).unsqueeze(-1)
    return tgt_box, tgt_scores, fg


def detection_loss(
    pboxes: torch.Tensor,
    logits: torch.Tensor,
    anchors: torch.Tensor,
    strides: torch.Tensor,
    gt_cls: torch.Tensor,
    gt_box: torch.Tensor,
    box_weight: float = 7.5,
    cls_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts for logging."""
    scores = logits.detach().sigmoid()
    tgt_box, tgt_scores, fg = assign(scores, pboxes.detach(), anchors, strides, gt_cls, gt_box)
    norm = tgt_scores.sum().clamp(min=1.0)
    cls_loss = F.binary_cross_entropy_with_logits(logits, tgt_scores, reduction="sum") / norm
    if fg.any():
        weight = tgt_scores.sum(-1)[fg]
        box_loss = ((1.0 - giou(pboxes[fg], tgt_box[fg])) * weight).sum() / norm
    else:
        box_loss = pboxes.sum() * 0.0
    total = box_weight * box_loss + cls_weight * cls_loss
    return total, {"box": float(box_loss.detach()), "cls": float(cls_loss.detach())}
