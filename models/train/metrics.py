"""Decoding, NMS and detection metrics (numpy only, shared by training and evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def iou_matrix(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> F64:
    """IoU between xyxy boxes ``a[N, 4]`` and ``b[M, 4]``."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9))


def decode_raw(
    out: npt.NDArray[np.floating], conf: float, iou: float = 0.5, max_det: int = 300
) -> list[tuple[int, float, F64]]:
    """Raw ``[4 + nc, N]`` output to ``(class, score, xyxy)`` after per-class NMS."""
    out = np.asarray(out, dtype=np.float32)
    boxes_cxcywh = out[:4].T
    scores = out[4:].T
    cls = scores.argmax(1)
    best = scores[np.arange(len(cls)), cls]
    keep = best >= conf
    if not keep.any():
        return []
    b = boxes_cxcywh[keep].astype(np.float64)
    xyxy = np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
    return nms(xyxy, best[keep], cls[keep], iou, max_det)


def nms(
    boxes: F64,
    scores: npt.NDArray[np.floating],
    classes: npt.NDArray[np.integer],
    iou: float,
    max_det: int,
) -> list[tuple[int, float, F64]]:
    """Greedy class-aware non-maximum suppression."""
    order = np.argsort(-scores, kind="stable")[: max_det * 4]
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    shifted = boxes + (classes.astype(np.float64) * 4096.0)[:, None]
    ious = iou_matrix(shifted, shifted)
    suppressed = np.zeros(len(order), dtype=bool)
    out = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        out.append((int(classes[i]), float(scores[i]), boxes[i]))
        if len(out) >= max_det:
            break
        suppressed |= ious[i] > iou
    return out


def average_precision(
    tp: npt.NDArray[np.bool_], scores: npt.NDArray[np.floating], n_gt: int
) -> float:
    """COCO-style 101-point interpolated AP from per-detection TP flags and scores."""
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(tp)[order].astype(np.float64)
    ctp = np.cumsum(hits)
    cfp = np.cumsum(1.0 - hits)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-9)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    grid = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(recall, grid, side="left")
    vals = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(vals.mean())


Detection = tuple[int, float, F64]
Truth = tuple[int, Sequence[float]]


def evaluate(
    dets: list[list[Detection]],
    truths: list[list[Truth]],
    nc: int,
    threshold: float,
    iou_thr: float = 0.5,
) -> dict[str, object]:
    """mAP@0.5, per-class AP, and precision/recall at ``threshold`` over a set of images."""
    per_cls_tp: list[list[bool]] = [[] for _ in range(nc)]
    per_cls_sc: list[list[float]] = [[] for _ in range(nc)]
    n_gt = np.zeros(nc, dtype=np.int64)
    for img_dets, img_truth in zip(dets, truths, strict=True):
        for c in range(nc):
            gts = np.array([t[1] for t in img_truth if t[0] == c], dtype=np.float64).reshape(-1, 4)
            n_gt[c] += len(gts)
            ds = sorted((d for d in img_dets if d[0] == c), key=lambda d: -d[1])
            if not ds:
                continue
            db = np.array([d[2] for d in ds], dtype=np.float64).reshape(-1, 4)
            used = np.zeros(len(gts), dtype=bool)
            ious = iou_matrix(db, gts) if len(gts) else np.zeros((len(ds), 0))
            for i, d in enumerate(ds):
                hit = False
                if len(gts):
                    cand = np.where(~used, ious[i], -1.0)
                    j = int(cand.argmax())
                    if cand[j] >= iou_thr:
                        used[j] = True
                        hit = True
                per_cls_tp[c].append(hit)
                per_cls_sc[c].append(d[1])
    aps: list[float] = []
    tp_at = fp_at = 0
    per_class: dict[int, dict[str, float]] = {}
    for c in range(nc):
        tp = np.array(per_cls_tp[c], dtype=bool)
        sc = np.array(per_cls_sc[c], dtype=np.float64)
        ap = average_precision(tp, sc, int(n_gt[c]))
        sel = sc >= threshold
        ctp, cfp = int(tp[sel].sum()), int((~tp[sel]).sum())
        tp_at += ctp
        fp_at += cfp
        per_class[c] = {
            "ap50": ap,
            "precision": ctp / max(ctp + cfp, 1),
            "recall": ctp / max(int(n_gt[c]), 1),
            "n_gt": float(n_gt[c]),
        }
        if not np.isnan(ap):
            aps.append(ap)
    return {
        "map50": float(np.mean(aps)) if aps else 0.0,
        "per_class": per_class,
        "precision": tp_at / max(tp_at + fp_at, 1),
        "recall": tp_at / max(int(n_gt.sum()), 1),
    }
