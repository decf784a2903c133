"""Train the street detector on a generated dataset and export it to ONNX.

The same code runs on CUDA (bf16 autocast, whole dataset resident on the GPU) and on the
CPU. Training is bounded by ``--max-minutes`` of wall time as well as ``--epochs``; the
learning rate follows a cosine over whichever budget ends first, and the EMA weights with
the best validation mAP@0.5 are kept and exported.

    python models/train/train.py --data /tmp/xh-data --out runs/street --max-minutes 7
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset import INPUT, load_split
from detector import ExportWrapper, StreetDetector, count_params
from loss import detection_loss
from metrics import evaluate, nms

NC = 11
MAX_OBJECTS = 64


def log(msg: str) -> None:
    """Progress line, flushed so a remote log can be followed."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class EMA:
    """Exponential moving average of the weights (decay ramps up over the first steps)."""

    def __init__(self, model: nn.Module, decay: float = 0.9998, tau: float = 800.0) -> None:
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


def pad_labels(labels: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged labels to padded class ``[N, M]`` (-1 = none) and boxes ``[N, M, 4]``."""
    m = max(1, min(MAX_OBJECTS, max((len(x) for x in labels), default=1)))
    cls = torch.full((len(labels), m), -1, dtype=torch.long)
    box = torch.zeros((len(labels), m, 4), dtype=torch.float32)
    for i, lab in enumerate(labels):
        k = min(len(lab), m)
        if k:
            cls[i, :k] = torch.from_numpy(lab[:k, 0]).long()
            box[i, :k] = torch.from_numpy(lab[:k, 1:5])
    return cls, box


def augment(
    x: torch.Tensor, box: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal flip and colour jitter on a float batch ``[B, 3, H, W]`` in 0..1."""
    b = x.shape[0]
    dev = x.device
    flip = torch.rand(b, generator=gen, device="cpu").to(dev) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    fb = box.clone()
    fb[..., 0] = INPUT - box[..., 2]
    fb[..., 2] = INPUT - box[..., 0]
    box = torch.where(flip[:, None, None], fb, box)
    gain = (0.75 + 0.5 * torch.rand(b, 1, 1, 1, generator=gen)).to(dev)
    chan = (0.92 + 0.16 * torch.rand(b, 3, 1, 1, generator=gen)).to(dev)
    bias = (torch.rand(b, 1, 1, 1, generator=gen) * 0.1 - 0.05).to(dev)
    pad = (x - 114.0 / 255.0).abs().sum(1, keepdim=True) < 1e-3  # keep letterbox bands exact
    jittered = (x * gain * chan + bias).clamp(0, 1)
    x = torch.where(pad, x, jittered)
    return x, box


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, device: torch.device, batch: int, conf: float = 0.01
) -> list[list[tuple[int, float, np.ndarray]]]:
    """Detections per image (class, score, xyxy) after NMS."""
    model.eval()
    out: list[list[tuple[int, float, np.ndarray]]] = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch].to(device, non_blocking=True).permute(0, 3, 1, 2).float() / 255
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            boxes, logits = model(x)
        scores = logits.float().sigmoid()
        best, cls = scores.max(-1)
        for j in range(x.shape[0]):
            keep = best[j] >= conf
            k = int(keep.sum())
            if k == 0:
                out.append([])
                continue
            sc, idx = best[j][keep].topk(min(k, 1000))
            bx = boxes[j][keep][idx].double().cpu().numpy()
            out.append(nms(bx, sc.cpu().numpy(), cls[j][keep][idx].cpu().numpy(), 0.5, 300))
    return out


def validate(
    model: nn.Module,
    images: torch.Tensor,
    labels: list[np.ndarray],
    device: torch.device,
    batch: int,
    threshold: float,
) -> dict[str, object]:
    """mAP@0.5 and per-class AP on the validation split."""
    dets = predict(model, images, device, batch)
    truths = [[(int(r[0]), r[1:5].tolist()) for r in lab] for lab in labels]
    return evaluate(dets, truths, NC, threshold)


def export_onnx(model: StreetDetector, path: Path) -> None:
    """Write ``[1, 4 + nc, N]`` ONNX (cx, cy, w, h in input pixels, sigmoid scores)."""
    model = copy.deepcopy(model).float().cpu().eval()
    wrapper = ExportWrapper(model).eval()
    dummy = torch.zeros(1, 3, INPUT, INPUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapper,
        (dummy,),
        str(path),
        input_names=["images"],
        output_names=["output0"],
        opset_version=17,
        dynamo=False,
        do_constant_folding=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the xiuhua street detector.")
    ap.add_argument("--data", type=Path, required=True, help="dataset root (train/, val/)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--max-minutes", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=0, help="0: 128 on CUDA, 32 on CPU")
    ap.add_argument("--lr", type=float, default=0.0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--eval-every", type=int, default=0, help="epochs between val (0: auto)")
    ap.add_argument("--threshold", type=float, default=0.35)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--init", type=Path, default=None, help="start from these weights (from_onnx.py's .pt)"
    )
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    dev = torch.device(
        "cuda"
        if (args.device == "auto" and torch.cuda.is_available())
        else ("cpu" if args.device == "auto" else args.device)
    )
    if dev.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    batch = args.batch or (128 if dev.type == "cuda" else 32)
    lr = args.lr or 2e-3 * (batch / 128) ** 0.5
    t0 = time.time()
    budget = args.max_minutes * 60.0
    args.out.mkdir(parents=True, exist_ok=True)

    tr_img, tr_lab = load_split(args.data / "train")
    va_img, va_lab = load_split(args.data / "val")
    log(
        f"loaded {len(tr_img)} train / {len(va_img)} val images in {time.time() - t0:.1f}s on {dev}"
    )
    n = len(tr_img)
    images = torch.from_numpy(tr_img)
    gt_cls, gt_box = pad_labels(tr_lab)
    if dev.type == "cuda":
        images, gt_cls, gt_box = images.to(dev), gt_cls.to(dev), gt_box.to(dev)
    val_images = torch.from_numpy(va_img)

    model = StreetDetector(NC)
    if args.init is not None:  # fine-tuning: the shipped model's weights, not a fresh start
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        log(f"starting from {args.init}")
    model = model.to(dev).to(memory_format=torch.channels_last)
    ema = EMA(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.99),
    )
    steps_per_epoch = max(1, n // batch)
    warmup = min(300, steps_per_epoch * 2)
    gen = torch.Generator().manual_seed(args.seed)
    history: list[dict[str, float]] = []
    best_map, best_state, best_epoch = -1.0, None, -1
    step = 0
    eval_reserve = 25.0 if dev.type == "cuda" else 0.0
    log(
        f"model params={count_params(model)} batch={batch} lr={lr:.2e} "
        f"steps/epoch={steps_per_epoch}"
    )
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums = {"loss": 0.0, "box": 0.0, "cls": 0.0}
        ep_t = time.time()
        done = 0
        for k in range(steps_per_epoch):
            elapsed = time.time() - t0
            frac = min(1.0, max(elapsed / budget, (epoch + k / steps_per_epoch) / args.epochs))
            scale = min(1.0, (step + 1) / warmup) * (
                0.04 + 0.96 * 0.5 * (1 + math.cos(math.pi * frac))
            )
            for g in opt.param_groups:
                g["lr"] = lr * scale
            idx = perm[k * batch : (k + 1) * batch]
            idx_dev = idx.to(images.device)
            x = images[idx_dev].to(dev, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0
            x = x.contiguous(memory_format=torch.channels_last)
            cls_b = gt_cls[idx_dev].to(dev)
            box_b = gt_box[idx_dev].to(dev)
            x, box_b = augment(x, box_b, gen)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                boxes, logits = model(x)
            anchors, strides = model.anchors(
                [(INPUT // s, INPUT // s) for s in (8, 16, 32)], dev, torch.float32
            )
            loss, parts = detection_loss(boxes, logits, anchors, strides, cls_b, box_b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            ema.update(model)
            step += 1
            done += 1
            sums["loss"] += float(loss.detach())
            sums["box"] += parts["box"]
            sums["cls"] += parts["cls"]
            if time.time() - t0 > budget - eval_reserve:
                break
        elapsed = time.time() - t0
        rec: dict[str, float] = {k: v / max(done, 1) for k, v in sums.items()}
        rec.update(
            epoch=epoch + 1,
            steps=done,
            epoch_s=round(time.time() - ep_t, 2),
            elapsed_s=round(elapsed, 1),
            lr=lr * scale,
        )
        out_of_time = elapsed > budget - eval_reserve
        last = out_of_time or epoch == args.epochs - 1
        every = args.eval_every or max(1, round(args.epochs / 10))
        late = frac > 0.5
        if (
            last
            or (late and (epoch + 1) % every == 0)
            or (dev.type == "cuda" and late and (epoch + 1) % 4 == 0)
        ):
            res = validate(ema.model, val_images, va_lab, dev, 256, args.threshold)
            rec["val_map50"] = float(res["map50"])  # type: ignore[arg-type]
            if rec["val_map50"] > best_map:
                best_map, best_epoch = rec["val_map50"], epoch + 1
                best_state = copy.deepcopy(ema.model.state_dict())
        history.append(rec)
        log(
            f"epoch {epoch + 1} loss={rec['loss']:.3f} box={rec['box']:.3f} "
            f"cls={rec['cls']:.3f} {rec['epoch_s']}s"
            + (f" val_map50={rec['val_map50']:.4f}" if "val_map50" in rec else "")
        )
        if out_of_time:
            break
    if best_state is not None:
        ema.model.load_state_dict(best_state)
    final = validate(ema.model, val_images, va_lab, dev, 256, args.threshold)
    torch.save({"model": ema.model.state_dict(), "nc": NC, "input": INPUT}, args.out / "best.pt")
    export_onnx(ema.model, args.out / "model.onnx")
    summary = {
        "device": str(dev),
        "torch": torch.__version__,
        "train_images": n,
        "val_images": len(va_img),
        "params": count_params(model),
        "batch": batch,
        "lr": lr,
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "val_map50": final["map50"],
        "val_per_class_ap50": {str(k): v["ap50"] for k, v in final["per_class"].items()},  # type: ignore[attr-defined]
        "wall_s": round(time.time() - t0, 1),
        "history": history,
    }
    (args.out / "train_log.json").write_text(json.dumps(summary, indent=1))
    log(
        f"done: val_map50={final['map50']:.4f} best_epoch={best_epoch} "
        f"wall={summary['wall_s']}s -> {args.out / 'model.onnx'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
