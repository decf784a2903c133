"""Live view at the hub, the pure part: who watches which camera, and what to tell units.

A camera is asked for once, whoever watches it: the first viewer makes a ``live.start``,
renewals go out every ``renew_s`` while at least one viewer remains, and the last viewer
leaving makes a ``live.stop`` (the unit's lease would lapse anyway). The service
(:mod:`central_hub.services.live`) sends what :class:`Audience` decides; times are
monotonic seconds passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Audience", "Camera"]


@dataclass(frozen=True, order=True)
class Camera:
    """One unit's camera: what a viewer watches and a unit streams."""

    device_id: str
    camera_id: str


@dataclass
class _Watched:
    viewers: set[int] = field(default_factory=set)
    asked_at: float | None = None


class Audience:
    """The viewers of each camera and when each camera was last asked to stream."""

    def __init__(self, renew_s: float) -> None:
        if renew_s <= 0:
            raise ValueError(f"renew_s must be above 0, got {renew_s}")
        self.renew_s = renew_s
        self._cameras: dict[Camera, _Watched] = {}

    def join(self, camera: Camera, viewer: int) -> bool:
        """Add ``viewer``; True when it is the camera's first (a start is needed)."""
        watched = self._cameras.setdefault(camera, _Watched())
        first = not watched.viewers
        watched.viewers.add(viewer)
        return first

    def leave(self, camera: Camera, viewer: int) -> bool:
        """Remove ``viewer``; True when it was the camera's last (a stop is due)."""
        watched = self._cameras.get(camera)
        if watched is None or viewer not in watched.viewers:
            return False
        watched.viewers.discard(viewer)
        if watched.viewers:
            return False
        del self._cameras[camera]
        return True

    def asked(self, camera: Camera, now: float) -> None:
        """A start (or renewal) for ``camera`` went out at ``now``."""
        watched = self._cameras.get(camera)
        if watched is not None:
            watched.asked_at = now

    def due(self, now: float) -> list[Camera]:
        """Watched cameras never asked, or last asked ``renew_s`` or more ago."""
        return sorted(
            camera
            for camera, watched in self._cameras.items()
            if watched.asked_at is None or now - watched.asked_at >= self.renew_s
        )

    def viewers(self, camera: Camera) -> int:
        """How many watch ``camera`` now."""
        watched = self._cameras.get(camera)
        return len(watched.viewers) if watched is not None else 0

    def cameras(self) -> list[Camera]:
        """The cameras someone watches now."""
        return sorted(self._cameras)
