"""Pinhole camera over a flat street.

World frame (metres): X to the right across the street, Y up, Z along the street away
from the camera. The camera sits at ``pos`` and looks along +Z, turned by ``yaw``
(positive turns to +X) and tilted down by ``pitch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Points closer than this to the image plane are not projected (they are behind the camera).
NEAR_PLANE_M = 0.3


@dataclass(frozen=True)
class Camera:
    """Intrinsics and pose of one camera; all geometry goes through :meth:`project`."""

    width: int
    height: int
    focal_px: float
    x: float
    y: float
    z: float
    pitch: float
    yaw: float

    @classmethod
    def looking(
        cls,
        width: int,
        height: int,
        *,
        hfov_deg: float,
        x: float,
        height_m: float,
        pitch_deg: float,
        yaw_deg: float,
        z: float = 0.0,
    ) -> Camera:
        """Build a camera from a horizontal field of view and angles in degrees."""
        focal = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(
            width, height, focal, x, height_m, z, math.radians(pitch_deg), math.radians(yaw_deg)
        )

    def to_camera(self, pts: FloatArray) -> FloatArray:
        """World points ``(N, 3)`` to camera coordinates ``(N, 3)`` (x right, y up, z depth)."""
        p = pts - np.array([self.x, self.y, self.z])
        out: FloatArray = p @ self._rot.T
        return out

    @property
    def _rot(self) -> FloatArray:
        cached: FloatArray | None = self.__dict__.get("_rot_cache")
        if cached is None:
            cy, sy = math.cos(self.yaw), math.sin(self.yaw)
            cp, sp = math.cos(self.pitch), math.sin(self.pitch)
            yaw = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
            pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
            cached = pitch @ yaw
            object.__setattr__(self, "_rot_cache", cached)
        return cached

    def project(self, pts: FloatArray) -> tuple[FloatArray, FloatArray]:
        """World points ``(N, 3)`` to pixels ``(N, 2)`` and their depth ``(N,)``."""
        c = self.to_camera(np.asarray(pts, dtype=np.float64).reshape(-1, 3))
        depth = c[:, 2]
        safe = np.maximum(depth, NEAR_PLANE_M)
        u = self.width / 2.0 + self.focal_px * c[:, 0] / safe
        v = self.height / 2.0 - self.focal_px * c[:, 1] / safe
        return np.stack([u, v], axis=1), depth

    def project_point(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        """One world point to ``(u, v, depth)``."""
        uv, d = self.project(np.array([[x, y, z]], dtype=np.float64))
        return float(uv[0, 0]), float(uv[0, 1]), float(d[0])

    def scale_at(self, x: float, z: float) -> float:
        """Pixels per metre for an upright object standing at ground point ``(x, z)``."""
        _, _, depth = self.project_point(x, 0.0, z)
        return self.focal_px / max(depth, NEAR_PLANE_M)

    def horizon_v(self) -> float:
        """Image row of the horizon (where the ground plane vanishes)."""
        return self.height / 2.0 - self.focal_px * math.tan(self.pitch)


def project_polygon(cam: Camera, pts: FloatArray) -> FloatArray | None:
    """Project a planar world polygon, clipped against the near plane; None if all behind."""
    c = cam.to_camera(np.asarray(pts, dtype=np.float64).reshape(-1, 3))
    near = NEAR_PLANE_M + 0.2
    if bool((c[:, 2] >= near).all()):
        uv = np.empty((len(c), 2))
        uv[:, 0] = cam.width / 2.0 + cam.focal_px * c[:, 0] / c[:, 2]
        uv[:, 1] = cam.height / 2.0 - cam.focal_px * c[:, 1] / c[:, 2]
        return uv
    out: list[FloatArray] = []
    n = len(c)
    for i in range(n):
        a, b = c[i], c[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + (b - a) * t)
    if len(out) < 3:
        return None
    arr = np.array(out)
    u = cam.width / 2.0 + cam.focal_px * arr[:, 0] / arr[:, 2]
    v = cam.height / 2.0 - cam.focal_px * arr[:, 1] / arr[:, 2]
    return np.stack([u, v], axis=1)


def clip_to_rect(poly: FloatArray, width: float, height: float) -> FloatArray:
    """Clip a 2D polygon to the rectangle ``[0, width] x [0, height]``."""
    pts = [tuple(p) for p in np.asarray(poly, dtype=np.float64)]
    for axis, bound, keep_less in (
        (0, 0.0, False),
        (0, width, True),
        (1, 0.0, False),
        (1, height, True),
    ):
        if not pts:
            break
        res = []
        for i in range(len(pts)):
            a, b = pts[i], pts[(i + 1) % len(pts)]
            a_in = a[axis] <= bound if keep_less else a[axis] >= bound
            b_in = b[axis] <= bound if keep_less else b[axis] >= bound
            if a_in:
                res.append(a)
            if a_in != b_in:
                t = (bound - a[axis]) / (b[axis] - a[axis])
                res.append((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t))
        pts = res
    return np.array(pts, dtype=np.float64).reshape(-1, 2)
