"""The hub's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Idempotency lives in primary keys and unique constraints (``events.event_id``,
``commands.cmd_id``, ``tracks.batch_id``), written with INSERT ... ON CONFLICT DO NOTHING,
never with a check-then-insert. Evidence images are not stored here, only their SHA-256.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "UTCDateTime",
    "audits",
    "auth_failures",
    "box_corrections",
    "case_objects",
    "cases",
    "citizen_followups",
    "citizen_reports",
    "commands",
    "contact_reads",
    "dead_letters",
    "devices",
    "events",
    "frame_reads",
    "live_views",
    "metadata",
    "model_packages",
    "open311_keys",
    "rollout_units",
    "rollouts",
    "service_object_audits",
    "service_object_contacts",
    "service_object_photos",
    "service_objects",
    "snapshots",
    "tracks",
    "users",
    "utc_from_driver",
    "vehicles",
    "vendor_counsellings",
    "vendor_file_lookups",
    "vendor_person_cases",
    "vendor_persons",
]


_ZERO = timedelta(0)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC on every backend (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; convert aware ones to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, one step from an aware datetime to the stored text.

        The same text SQLAlchemy's SQLite ``DateTime`` writes (``YYYY-MM-DD
        HH:MM:SS.ffffff``, UTC), without its dictionary formatting after this decorator's
        conversion: filing binds several datetimes a report, and the two steps cost more
        than the insert. Other dialects take the decorator's usual path.
        """
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        # The last value converted and its text: a batch binds one ``now`` in every row
        # of a column (received_at, updated_at, an audit's at): formatting it again for
        # each row was a third of ingest's datetime binding, itself a tenth of its
        # interpreter time (py-spy, 40,000 events). Datetimes are immutable,
        # so the same object gives the same text; held as one tuple, read and replaced
        # whole, so threads sharing the processor never pair a value with another's text.
        last: tuple[datetime | None, str | None] = (None, None)

        def process(value: datetime | None) -> str | None:
            nonlocal last
            if value is None:
                return None
            seen = last
            if value is seen[0]:
                return seen[1]
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTCDateTime column")
            if value.utcoffset() == _ZERO:
                # Already UTC (datetime.UTC, or pydantic's zone of a parsed "Z"): the
                # text less its "+00:00", without building a converted copy first.
                text = value.isoformat(" ", "microseconds")[:-6]
            else:
                text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            last = (value, text)
            return text

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_fromisoformat = datetime.fromisoformat


def utc_from_driver(value: object) -> datetime:
    """A UTCDateTime column's raw value, as a query sent straight to the driver returns it,
    as an aware UTC datetime: the fast path of :meth:`UTCDateTime.process_result_value`.

    SQLite gives the text SQLAlchemy wrote (``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, no
    zone): ``fromisoformat`` with the zone appended builds the aware value in one step,
    several times faster than parsing and then ``replace(tzinfo=...)``; text that carries
    its own zone takes the slow road. asyncpg gives a datetime.
    """
    if isinstance(value, str):
        try:
            return _fromisoformat(value + "+00:00")
        except ValueError:
            parsed = _fromisoformat(value)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if not isinstance(value, datetime):
        raise TypeError(f"not a datetime from the database: {value!r}")
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON()


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("code", sa.String(8), nullable=False),
    sa.Column("major", sa.String(2), nullable=False),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("line", sa.String(16), nullable=False),
    sa.Column("grid_cell_id", sa.String(64), nullable=True, index=True),
    sa.Column("squad_id", sa.String(64), nullable=True),
    sa.Column("stage", sa.String(16), nullable=False, index=True),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("reported_at", UTCDateTime, nullable=False, index=True),
    sa.Column("deadline", UTCDateTime, nullable=True),
    sa.Column("limit_kind", sa.String(16), nullable=False),
    sa.Column("limit_amount", sa.Float, nullable=False),
    sa.Column("verification_required", sa.Boolean, nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("last_event_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Indexed: a period's statistics read the cases open at its start or closed in it.
    sa.Column("closed_at", UTCDateTime, nullable=True, index=True),
    # The report that opened the case (an event id, later a citizen report id); unique,
    # so a batch insert can map RETURNING rows back to its reports in any order.
    sa.Column("first_report_id", sa.String(64), nullable=True, unique=True),
    # The grid (Grid.version) whose cells grid_cell_id and squad_id come from; a later
    # import of a city's grid does not reinterpret older cases. Null before 0003.
    sa.Column("grid_version", sa.String(16), nullable=True),
    # The square of the case's place (case_filing.place_key): filing reads a code's open
    # cases in the few squares its reports' merge radii reach. Null without a place.
    sa.Column("place_key", sa.BigInteger, nullable=True),
    # The plate of the vehicle the case is about (its first report's, read by the unit):
    # a report of another plate is another vehicle, so another case. Null: none read.
    sa.Column("plate", sa.String(16), nullable=True),
    sa.Index("ix_cases_code_place", "code", "place_key"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("device_id", sa.String(63), nullable=False, index=True),
    sa.Column("camera_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("code", sa.String(8), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("detected_at", UTCDateTime, nullable=False, index=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("dwell_s", sa.Float, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    sa.Column("location_source", sa.String(8), nullable=False),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("plate_text", sa.String(16), nullable=True),
    sa.Column("snapshot_sha256", sa.String(64), nullable=True),
    # The clean frame (no boxes, no blur) for retraining, in the frames store: admins only.
    sa.Column("frame_sha256", sa.String(64), nullable=True),
    # Where the frame shows faces (normalised boxes), for exports to blur.
    sa.Column("frame_faces", _json(), nullable=True),
    sa.Column("objects", _json(), nullable=False),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True, index=True),
    # A shadow candidate's would-be event (Event.shadow): stored to compare, never filed.
    sa.Column("shadow", sa.Boolean, nullable=False, server_default=sa.false()),
    # Why the event was stored but not filed: the service day it fell in (0016). Null else.
    sa.Column("not_filed_reason", sa.Text, nullable=True),
)

audits = sa.Table(
    "audits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("from_stage", sa.String(16), nullable=True),
    sa.Column("to_stage", sa.String(16), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("attachments", _json(), nullable=False),
    # Why an AI report was cancelled at verification (domain.labels.Verdict); null else.
    sa.Column("verdict", sa.String(24), nullable=True),
)

#: Who read which clean frame, when (frames show faces and plates unblurred).
frame_reads = sa.Table(
    "frame_reads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", UTCDateTime, nullable=False, index=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("device_id", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("fields", _json(), nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("device_id", sa.String(63), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=True),
    sa.Column("state", sa.String(16), nullable=False, server_default="unknown"),
    sa.Column("status_ts", UTCDateTime, nullable=True),
    sa.Column("seen_at", UTCDateTime, nullable=True),
    sa.Column("boot_id", sa.String(64), nullable=True),
    sa.Column("fw", sa.String(64), nullable=True),
    sa.Column("model", sa.String(64), nullable=True),
    sa.Column("config_version", sa.Integer, nullable=True),
    sa.Column("telemetry", _json(), nullable=True),
    sa.Column("telemetry_at", UTCDateTime, nullable=True),
    sa.Column("desired_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("desired_config", _json(), nullable=True),
    sa.Column("reported_version", sa.Integer, nullable=True),
    sa.Column("reported_state", sa.String(16), nullable=True),
    sa.Column("reported_errors", _json(), nullable=True),
    sa.Column("reported_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("cmd_id", sa.String(36), primary_key=True),
    sa.Column("device_id", sa.String(63), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("params", _json(), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

tracks = sa.Table(
    "tracks",
    metadata,
    sa.Column("batch_id", sa.String(36), primary_key=True),
    sa.Column("device_id", sa.String(63), nullable=False, index=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("first_ts", UTCDateTime, nullable=False),
    sa.Column("last_ts", UTCDateTime, nullable=False),
    sa.Column("points", _json(), nullable=False),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("cmd_id", sa.String(36), primary_key=True),
    sa.Column("device_id", sa.String(63), nullable=False, index=True),
    sa.Column("camera_id", sa.String(64), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
)

#: Model packages the hub serves to units (``central-hub model publish``): the archive
#: lies in ``data_dir/packages/<sha256>.tar``.
model_packages = sa.Table(
    "model_packages",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("labels", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)

#: Rollout campaigns of a model package or a config (``central_hub.domain.rollout``).
rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),  # model | config
    sa.Column("package_sha256", sa.String(64), nullable=True),
    sa.Column("slot", sa.String(64), nullable=True),
    sa.Column("config", _json(), nullable=True),
    sa.Column("target", _json(), nullable=False),
    sa.Column("policy", _json(), nullable=False),
    # Model campaigns: {"cameras": [...]} installs the package as its slot's shadow.
    sa.Column("shadow", _json(), nullable=True),
    sa.Column("phase", sa.String(16), nullable=False, index=True),
    sa.Column("phase_since", UTCDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

#: One unit of a campaign: its state, the command that carries it, its download token.
rollout_units = sa.Table(
    "rollout_units",
    metadata,
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), primary_key=True),
    sa.Column("device_id", sa.String(63), primary_key=True),
    sa.Column("canary", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("cmd_id", sa.String(36), nullable=True),
    sa.Column("rollback_cmd_id", sa.String(36), nullable=True),
    # sha256 of the unit's download token; the token itself travels only in the command.
    sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("previous_config", _json(), nullable=True),
    sa.Column("bytes_served", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
)

#: Boxes an operator drew, moved or relabelled on an event's frame; the newest row of an
#: event is what a retraining set takes instead of the unit's detections.
box_corrections = sa.Table(
    "box_corrections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, index=True),
    sa.Column("objects", _json(), nullable=False),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

#: Failed logins and refused API tokens, and refusals while a source was blocked.
auth_failures = sa.Table(
    "auth_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
)

#: Keys of the trusted clients that may file citizen reports through Open311 (the city's
#: app): ``central-hub open311 key add`` prints a key once; only its SHA-256 is kept.
open311_keys = sa.Table(
    "open311_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

#: Citizens' reports (Open311 service requests), each filed as a case through the same
#: filing path as a unit's events (``cases.first_report_id`` holds ``report_id`` when the
#: report opened its case). The reporter's contact is personal data: never published,
#: cleared by retention a while after the case closed (``contact_cleared_at``).
citizen_reports = sa.Table(
    "citizen_reports",
    metadata,
    # The public service_request_id.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # The filing id and the report's token (a UUID).
    sa.Column("report_id", sa.String(36), nullable=False, unique=True),
    sa.Column("api_key_id", sa.Integer, sa.ForeignKey("open311_keys.id"), nullable=False),
    # A client's Idempotency-Key: a retried submission returns the first report.
    sa.Column("idempotency_key", sa.String(64), nullable=True),
    sa.Column("code", sa.String(8), nullable=False),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("lat", sa.Float, nullable=False),
    sa.Column("lon", sa.Float, nullable=False),
    # gps: the client sent lat/long; address: placed from address_string on the grid.
    sa.Column("location_source", sa.String(8), nullable=False),
    sa.Column("address", sa.String(400), nullable=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("attributes", _json(), nullable=False),
    # A client's media_url, stored as given; an uploaded photo in the evidence store.
    sa.Column("media_url", sa.String(2000), nullable=True),
    sa.Column("photo_sha256", sa.String(64), nullable=True),
    # Personal data (PIPL): never in public output, masked for operators.
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("first_name", sa.String(100), nullable=True),
    sa.Column("last_name", sa.String(100), nullable=True),
    sa.Column("phone", sa.String(40), nullable=True),
    sa.Column("device_id", sa.String(128), nullable=True),
    sa.Column("account_id", sa.String(128), nullable=True),
    sa.Column("contact_cleared_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    # Moderation (services.citizen_moderation): a hidden report is left out of Open311's
    # public output; a redacted one lost its description and photo for good. Who and when
    # are here, why is in the case's audit trail.
    sa.Column("hidden_at", UTCDateTime, nullable=True),
    sa.Column("hidden_by", sa.String(64), nullable=True),
    sa.Column("redacted_at", UTCDateTime, nullable=True),
    sa.Column("redacted_by", sa.String(64), nullable=True),
    sa.UniqueConstraint("api_key_id", "idempotency_key", name="uq_citizen_reports_idempotency"),
)

#: Who read which citizen reporter's contact in full, when (admins only see it unmasked;
#: each read is recorded before the contact is sent, as ``frame_reads`` does for frames).
contact_reads = sa.Table(
    "contact_reads",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "report_id", sa.Integer, sa.ForeignKey("citizen_reports.id"), nullable=False, index=True
    ),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
)

# --- the service-object registry and the vehicle registry (issue #14 items 1 and 3) ---

#: The service-object registry (``central_hub.services.service_objects``): shops,
#: companies, communities, villages and key facilities. One object per (name, address),
#: so a re-import updates it; ``search_text`` is name and address case-folded, what a
#: name search reads; ``grid_cell_id`` is the street cell its location lies in (of the
#: grid ``grid_version``), as a case's is.
service_objects = sa.Table(
    "service_objects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("address", sa.String(400), nullable=False),
    sa.Column("industry", sa.String(8), nullable=True),
    sa.Column("subcategory", sa.String(8), nullable=True),
    sa.Column("legal_representative", sa.String(100), nullable=True),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lon", sa.Float, nullable=True),
    sa.Column("grid_cell_id", sa.String(64), nullable=True, index=True),
    sa.Column("grid_version", sa.String(16), nullable=True),
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
    sa.Column("search_text", sa.String(610), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
    sa.UniqueConstraint("name", "address", name="uq_service_objects_name_address"),
    sa.Index("ix_service_objects_industry_subcategory", "industry", "subcategory"),
    # The nearest street shop to a case: a kind's objects in a band of latitude.
    sa.Index("ix_service_objects_kind_lat", "kind", "lat"),
)

#: An object's contacts: where notices to the object, its industry or its grid area go.
service_object_contacts = sa.Table(
    "service_object_contacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "object_id", sa.Integer, sa.ForeignKey("service_objects.id"), nullable=False, index=True
    ),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(64), nullable=False, server_default=""),
    sa.Column("phone", sa.String(40), nullable=True),
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("object_id", "name", name="uq_service_object_contacts_object_name"),
)

#: Photos of an object (JPEG without EXIF in the evidence store, by SHA-256).
service_object_photos = sa.Table(
    "service_object_photos",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "object_id", sa.Integer, sa.ForeignKey("service_objects.id"), nullable=False, index=True
    ),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("added_at", UTCDateTime, nullable=False),
    sa.Column("added_by", sa.String(64), nullable=False),
)

#: Who created or changed an object, when, and what (``changes``: field -> [old, new]).
service_object_audits = sa.Table(
    "service_object_audits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "object_id", sa.Integer, sa.ForeignKey("service_objects.id"), nullable=False, index=True
    ),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("changes", _json(), nullable=False),
)

#: Which object a case concerns (a 0504 at a shop front: the shop). ``how``: auto (the
#: nearest street shop) or manual (an operator); an unlinked row stays, with who and when,
#: so the automatic link is not made again.
case_objects = sa.Table(
    "case_objects",
    metadata,
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column(
        "object_id", sa.Integer, sa.ForeignKey("service_objects.id"), primary_key=True, index=True
    ),
    sa.Column("how", sa.String(8), nullable=False),
    sa.Column("linked_at", UTCDateTime, nullable=False),
    sa.Column("linked_by", sa.String(64), nullable=False),
    sa.Column("unlinked_at", UTCDateTime, nullable=True),
    sa.Column("unlinked_by", sa.String(64), nullable=True),
)

#: The vehicle registry: a plate (as the plate reader writes it) to its owner's contact,
#: for move-your-car reminders. Personal data: phones masked for roles that send none.
vehicles = sa.Table(
    "vehicles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plate", sa.String(16), nullable=False, unique=True),
    sa.Column("owner_name", sa.String(100), nullable=False),
    sa.Column("phone", sa.String(40), nullable=False),
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
)

# --- the vendor file (issue #14 item 4) ---

#: People in the vendor file (文明执法查询平台). The identity number is personal data: only
#: its AES-GCM ciphertext (``id_cipher``) and a keyed hash (``id_hmac``, to find a person
#: by number) are kept, with the id of the key that wrote the row (``key_id``), so a hub
#: started with another key refuses to run. The file is permanent: no row is deleted.
vendor_persons = sa.Table(
    "vendor_persons",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, index=True),
    sa.Column("phone", sa.String(40), nullable=True),
    # A photo in the vendor file's own store (not the case evidence, not swept).
    sa.Column("photo_sha256", sa.String(64), nullable=True),
    sa.Column("id_cipher", sa.LargeBinary, nullable=True),
    sa.Column("id_hmac", sa.String(64), nullable=True, unique=True),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

#: Which person a 0501 case (a violation) belongs to: the case id is the key, so a case
#: links to one person at most.
vendor_person_cases = sa.Table(
    "vendor_person_cases",
    metadata,
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column(
        "person_id", sa.Integer, sa.ForeignKey("vendor_persons.id"), nullable=False, index=True
    ),
    sa.Column("linked_by", sa.String(64), nullable=False),
    sa.Column("linked_at", UTCDateTime, nullable=False),
)

#: Counsellings (劝导): when, by which officer, with what outcome (complied, refused,
#: ineffective), for which case if the officer named one.
vendor_counsellings = sa.Table(
    "vendor_counsellings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "person_id", sa.Integer, sa.ForeignKey("vendor_persons.id"), nullable=False, index=True
    ),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("officer", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("note", sa.String(500), nullable=False, server_default=""),
    sa.Column("recorded_by", sa.String(64), nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

#: Every look into the vendor file, written before the result is sent: who (and their
#: role), when, why, what they searched (a name, or a masked identity number) and the
#: people shown (``kind``: search, id_number or file).
vendor_file_lookups = sa.Table(
    "vendor_file_lookups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("query", sa.String(64), nullable=False, server_default=""),
    sa.Column("shown", _json(), nullable=False),
)

# --- notices (issue #14 item 2) ---

#: Notice templates (:mod:`central_hub.domain.notices`): ``{variable}`` texts, checked
#: when made; ``variables`` lists the declared names.
notice_templates = sa.Table(
    "notice_templates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("variables", _json(), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

#: A notice: a template filled in once (``subject``/``body``), on one channel, for an
#: audience (as asked, JSON); ``case_id`` when it is about a case (a move-your-car
#: reminder). The id is a UUID made by the hub, so a batch inserts without round trips.
notices = sa.Table(
    "notices",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("template_id", sa.Integer, sa.ForeignKey("notice_templates.id"), nullable=False),
    sa.Column("variables", _json(), nullable=False),
    sa.Column("audience", _json(), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True, index=True),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
)

#: The durable queue: one row per recipient and channel of a notice. ``id`` is the
#: idempotency key the channel carries (the webhook's ``Idempotency-Key``) on every
#: attempt; ``claim``/``lease_until`` mark a worker's claim while ``sending``.
notice_deliveries = sa.Table(
    "notice_deliveries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("notice_id", sa.String(36), sa.ForeignKey("notices.id"), nullable=False, index=True),
    sa.Column("contact_id", sa.String(64), nullable=False),
    # Personal data (PIPL): the name and the phone or e-mail address the notice went to.
    sa.Column("name", sa.String(100), nullable=False, server_default=""),
    sa.Column("address", sa.String(254), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("urgent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("claim", sa.String(36), nullable=True),
    sa.Column("provider_message_id", sa.String(128), nullable=True, index=True),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("receipt_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint(
        "notice_id", "contact_id", "channel", name="uq_notice_deliveries_recipient"
    ),
    sa.Index("ix_notice_deliveries_due", "state", "channel", "next_attempt_at"),
)

#: Addresses (a phone, an e-mail) that asked for no more notices on a channel.
notice_opt_outs = sa.Table(
    "notice_opt_outs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("address", sa.String(254), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("channel", "address", name="uq_notice_opt_outs_address"),
)

# --- the move-your-car loop (issue #14 item 3) ---

#: One row per 0505 case the parking loop looked at (``central_hub.services.parking``):
#: the car (plate, the unit, camera, zone and box that saw it), the reminder's notice, when
#: the unit is asked to look again and what it answered. ``state`` is a
#: :class:`~central_hub.domain.parking.CheckState`.
parking_checks = sa.Table(
    "parking_checks",
    metadata,
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("device_id", sa.String(63), nullable=False),
    sa.Column("camera_id", sa.String(64), nullable=False),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("plate", sa.String(16), nullable=True),
    sa.Column("box", _json(), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False, server_default=""),
    sa.Column("notice_id", sa.String(36), nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("reminded_at", UTCDateTime, nullable=True),
    # The wait of the case's grid area; the recheck is due that long after the text went
    # out (a text held by quiet hours does not start the wait).
    sa.Column("wait_s", sa.Float, nullable=True),
    sa.Column("due_at", UTCDateTime, nullable=True),
    sa.Column("cmd_id", sa.String(36), nullable=True),
    sa.Column("asked_at", UTCDateTime, nullable=True),
    sa.Column("decided_at", UTCDateTime, nullable=True),
    sa.Index("ix_parking_checks_state_due", "state", "due_at"),
)

# --- live view on demand (issue #16 item 1) ---

#: One row per person watching a camera live (``central_hub.services.live``): who, which
#: unit and camera, from a case page or not, from when to when and how many frames they
#: were sent. ``ended_at`` is null while they watch (or if the hub died meanwhile).
live_views = sa.Table(
    "live_views",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(63), nullable=False),
    sa.Column("camera_id", sa.String(64), nullable=False),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("frames", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_live_views_device", "device_id", "started_at"),
    sa.Index("ix_live_views_case", "case_id"),
)

# --- voice: scheduled announcements (issue #16 item 2) ---

#: An announcement to every loudspeaker of a grid ``area`` at local ``times`` ("HH:MM")
#: on ``weekdays`` (1 = Monday) from ``start_date`` to ``end_date`` (inclusive; null: no
#: end): a notice ``template`` with ``variables`` on the speaker channel
#: (``central_hub.services.voice_schedules``).
voice_schedules = sa.Table(
    "voice_schedules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("area", sa.String(64), nullable=False),
    sa.Column("template", sa.String(64), nullable=False),
    sa.Column("variables", _json(), nullable=False),
    sa.Column("times", _json(), nullable=False),
    sa.Column("weekdays", _json(), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=True),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("cancelled_at", UTCDateTime, nullable=True),
)

#: One row per slot of a schedule that was claimed: the primary key makes it one send per
#: slot across workers and restarts; ``notice_id`` is the notice it queued.
voice_schedule_slots = sa.Table(
    "voice_schedule_slots",
    metadata,
    sa.Column("schedule_id", sa.Integer, sa.ForeignKey("voice_schedules.id"), primary_key=True),
    sa.Column("slot_at", UTCDateTime, primary_key=True),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("notice_id", sa.String(36), nullable=True),
)

#: Reporter follow-up (services.citizen_followup): one row per report and status change
#: looked at (the audit row of the change). ``address_key`` is a hash of the channel and
#: the address told, unique per change, so one person who reported a problem twice is
#: told once (the second report's row gets a key of its own and ``error`` says why); the
#: row is claimed before the notice is queued, so two hub workers tell it once. ``channel``
#: None: nobody was told (no reachable address, the address's daily cap, told already).
citizen_followups = sa.Table(
    "citizen_followups",
    metadata,
    sa.Column("report_id", sa.Integer, sa.ForeignKey("citizen_reports.id"), primary_key=True),
    sa.Column("audit_id", sa.Integer, sa.ForeignKey("audits.id"), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("notice_id", sa.String(36), nullable=True),
    sa.Column("channel", sa.String(16), nullable=True),
    sa.Column("address_key", sa.String(64), nullable=False, index=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.UniqueConstraint("audit_id", "address_key"),
)
