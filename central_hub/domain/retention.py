"""How long the hub keeps what is personal: photos, clean frames, GPS tracks, refused raw
messages, citizen reporters' contact details, operators' recorded voice. A city sets the days
(``XH_HUB_RETENTION_*``); this module turns them into the instants before which each kind
goes. Pure: the clock is passed in.

Case records, their audit trails and the audits of who read what are kept: they are the
bureau's statistics and its accountability, and hold no photo.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

__all__ = ["RetentionCutoffs", "RetentionPolicy", "RetentionReport"]


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each kind is kept; 0 keeps it for ever.

    * ``evidence_days``: the public (blurred) photos of a case, counted from its closure
      (or cancellation); photos of events never filed, from their detection.
    * ``frames_days``: the clean, unblurred frames kept for retraining, from detection.
    * ``snapshots_days``: photos taken on an operator's request, from receipt.
    * ``tracks_days``: trucks' GPS tracks, from their last point.
    * ``dead_letters_days``: refused messages with their raw bytes, from receipt.
    * ``shadow_days``: a shadow candidate's would-be events, from detection.
    * ``citizen_contact_days``: a citizen reporter's contact (email, names, phone, device
      and account ids), from the closure (or cancellation) of the report's case; the
      report itself stays. Their photos go with the case's (``evidence_days``).
    * ``voice_days``: operators' recorded loudspeaker messages (the audio), from the last
      time one was sent; who sent what to which unit stays in the command's row.
    """

    evidence_days: int = 730
    frames_days: int = 180
    snapshots_days: int = 90
    tracks_days: int = 180
    dead_letters_days: int = 30
    shadow_days: int = 60
    citizen_contact_days: int = 180
    voice_days: int = 90

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"{f.name} must be 0 (keep) or a number of days")

    def cutoffs(self, now: datetime) -> RetentionCutoffs:
        """The instant before which each kind goes at ``now`` (None: kept for ever)."""

        def before(days: int) -> datetime | None:
            return now - timedelta(days=days) if days else None

        return RetentionCutoffs(
            evidence=before(self.evidence_days),
            frames=before(self.frames_days),
            snapshots=before(self.snapshots_days),
            tracks=before(self.tracks_days),
            dead_letters=before(self.dead_letters_days),
            shadow=before(self.shadow_days),
            citizen_contact=before(self.citizen_contact_days),
            voice=before(self.voice_days),
        )


@dataclass(frozen=True)
class RetentionCutoffs:
    """Per kind, the instant before which it goes; None keeps it."""

    evidence: datetime | None
    frames: datetime | None
    snapshots: datetime | None
    tracks: datetime | None
    dead_letters: datetime | None
    shadow: datetime | None
    citizen_contact: datetime | None
    voice: datetime | None


@dataclass(frozen=True)
class RetentionReport:
    """What one pass removed (or, dry, would remove)."""

    events_evidence_dropped: int = 0
    frames_dropped: int = 0
    snapshots_deleted: int = 0
    tracks_deleted: int = 0
    dead_letters_deleted: int = 0
    shadow_events_deleted: int = 0
    citizen_photos_dropped: int = 0
    citizen_contacts_cleared: int = 0
    followup_addresses_masked: int = 0
    evidence_files_deleted: int = 0
    frame_files_deleted: int = 0
    voice_clips_deleted: int = 0
    dry_run: bool = False
