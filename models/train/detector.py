"""A small single-stage, anchor-free street detector (our own design).

Backbone: strided conv stem and CSP stages (split, residual bottlenecks, concatenate),
SPPF at stride 32. Neck: a PAN (top-down then bottom-up) over strides 8/16/32. Head:
decoupled box and class branches per level. Each location predicts distances to the four
box sides (softplus x stride) and per-class logits; there is no objectness output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STRIDES = (8, 16, 32)


class ConvBN(nn.Module):
    """Conv + BatchNorm + SiLU."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 convs with a residual connection."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = ConvBN(c, c, 3)
        self.b = ConvBN(c, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class CSP(nn.Module):
    """Split the channels, run one half through bottlenecks, concatenate every stage."""

    def __init__(self, c1: int, c2: int, n: int = 1) -> None:
        super().__init__()
        self.h = c2 // 2
        self.cv1 = ConvBN(c1, 2 * self.h, 1)
        self.blocks = nn.ModuleList(Bottleneck(self.h) for _ in range(n))
        self.cv2 = ConvBN((2 + n) * self.h, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.cv1(x).chunk(2, 1))
        for blk in self.blocks:
            parts.append(blk(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (three chained 5x5 max-pools)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.cv1 = ConvBN(c, c // 2, 1)
        self.cv2 = ConvBN(c * 2, c, 1)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.cv1(x)
        b = self.pool(a)
        c = self.pool(b)
        return self.cv2(torch.cat([a, b, c, self.pool(c)], 1))


class Head(nn.Module):
    """Decoupled head for one level: 4 box-distance channels and ``nc`` class logits."""

    def __init__(self, c: int, nc: int, width: int) -> None:
        super().__init__()
        self.box = nn.Sequential(
            ConvBN(c, width, 3), ConvBN(width, width, 3), nn.Conv2d(width, 4, 1)
        )
        self.cls = nn.Sequential(
            ConvBN(c, width, 3), ConvBN(width, width, 3), nn.Conv2d(width, nc, 1)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.box(x), self.cls(x)


class StreetDetector(nn.Module):
    """The detector. ``forward`` returns boxes ``[B, A, 4]`` (x1, y1, x2, y2 input pixels)
    and class logits ``[B, A, nc]`` over all anchor points of the three levels."""

    def __init__(
        self,
        nc: int,
        widths: tuple[int, int, int, int, int] = (16, 32, 64, 128, 192),
        head_width: int = 64,
    ) -> None:
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.nc = nc
        self.stem = nn.Sequential(ConvBN(3, w0, 3, 2), ConvBN(w0, w1, 3, 2), CSP(w1, w1, 1))
        self.s8 = nn.Sequential(ConvBN(w1, w2, 3, 2), CSP(w2, w2, 2))
        self.s16 = nn.Sequential(ConvBN(w2, w3, 3, 2), CSP(w3, w3, 2))
        self.s32 = nn.Sequential(ConvBN(w3, w4, 3, 2), CSP(w4, w4, 1), SPPF(w4))
        self.td4 = CSP(w4 + w3, w3, 1)
        self.td3 = CSP(w3 + w2, w2, 1)
        self.down3 = ConvBN(w2, w2, 3, 2)
        self.bu4 = CSP(w2 + w3, w3, 1)
        self.down4 = ConvBN(w3, w3, 3, 2)
        self.bu5 = CSP(w3 + w4, w4, 1)
        self.heads = nn.ModuleList(Head(c, nc, head_width) for c in (w2, w3, w4))
        self._anchor_cache: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.reset_bias()

    def reset_bias(self) -> None:
        """Start with low class probabilities and boxes about two strides wide."""
        for head in self.heads:
            cls_out = head.cls[-1]
            box_out = head.box[-1]
            assert isinstance(cls_out, nn.Conv2d)
            assert isinstance(box_out, nn.Conv2d)
            nn.init.constant_(cls_out.bias, -4.6)
            nn.init.constant_(box_out.bias, 1.0)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Neck outputs at strides 8, 16, 32."""
        c3 = self.s8(self.stem(x))
        c4 = self.s16(c3)
        c5 = self.s32(c4)
        p4 = self.td4(torch.cat([F.interpolate(c5, scale_factor=2.0, mode="nearest"), c4], 1))
        p3 = self.td3(torch.cat([F.interpolate(p4, scale_factor=2.0, mode="nearest"), c3], 1))
        n4 = self.bu4(torch.cat([self.down3(p3), p4], 1))
        n5 = self.bu5(torch.cat([self.down4(n4), c5], 1))
        return [p3, n4, n5]

    def anchors(
        self, shapes: list[tuple[int, int]], device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor centres ``[A, 2]`` in input pixels and their strides ``[A]``."""
        pts, strides = [], []
        for (h, w), s in zip(shapes, STRIDES, strict=True):
            ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
            xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            pts.append(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1))
            strides.append(torch.full((h * w,), float(s), device=device, dtype=dtype))
        return torch.cat(pts), torch.cat(strides)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x)
        dists, logits, shapes = [], [], []
        for f, head in zip(feats, self.heads, strict=True):
            d, c = head(f)
            b = d.shape[0]
            shapes.append((d.shape[2], d.shape[3]))
            dists.append(d.reshape(b, 4, -1))
            logits.append(c.reshape(b, self.nc, -1))
        dist = torch.cat(dists, 2).permute(0, 2, 1).float()
        logit = torch.cat(logits, 2).permute(0, 2, 1).float()
        pts, strides = self.anchors(shapes, x.device, torch.float32)
        ltrb = F.softplus(dist) * strides[None, :, None]
        boxes = torch.cat([pts[None] - ltrb[..., :2], pts[None] + ltrb[..., 2:]], -1)
        return boxes, logit


class ExportWrapper(nn.Module):
    """ONNX face of the detector: ``[1, 4 + nc, A]`` with cx, cy, w, h then sigmoid scores."""

    def __init__(self, model: StreetDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        boxes, logits = self.model(x)
        xy = (boxes[..., :2] + boxes[..., 2:]) / 2
        wh = boxes[..., 2:] - boxes[..., :2]
        out = torch.cat([xy, wh, logits.sigmoid()], -1)
        return out.permute(0, 2, 1)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())
