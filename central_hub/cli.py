"""The ``central-hub`` command: serve, migrate, keygen, model, rollout, dataset, provision,
user, grid, plates, open311, vendor-file, backup, restore."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from central_hub import (
    cli_keys,
    cli_objects,
    cli_open311,
    cli_plates,
    cli_rollout,
    cli_service_days,
    cli_vendor_file,
)
from central_hub.adapters.evidence import EvidenceStore
from central_hub.adapters.mqtt import drop_session
from central_hub.app import serve
from central_hub.db.engine import create_engine
from central_hub.db.migrate import migrate
from central_hub.domain.errors import DomainError, GridError
from central_hub.domain.grid import Grid
from central_hub.domain.workflow import Role
from central_hub.errors import HubError
from central_hub.hub import build_hub, hub_client_id, load_or_create_key
from central_hub.services import pki
from central_hub.services.backup import backup, restore
from central_hub.services.city_data import grid_source, import_grid
from central_hub.services.dataset import ExportOptions, export_dataset
from central_hub.services.keys import identity_key
from central_hub.services.provision import PLAIN_PORT, TLS_PORT, ensure_api_tls, provision_device
from central_hub.services.retention import apply_retention
from central_hub.services.vendor_file import vendor_photos_path
from central_hub.settings import HubSettings
from edge_agent.protocol import public_key_b64
from edge_agent.vision.errors import ModelError
from edge_agent.vision.manifest import load_manifest
from edge_agent.vision.package import PackageError, sign_package, verify_package

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> HubSettings:
    overrides: dict[str, Any] = {}
    names = ("data_dir", "db_url", "mqtt_host", "mqtt_port", "mqtt_client_id", "api_port")
    for name in (*names, "metrics_port"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return HubSettings(**overrides)


async def _migrate(settings: HubSettings) -> str:
    engine = create_engine(settings.database_url)
    try:
        return await migrate(engine)
    finally:
        await engine.dispose()


async def _user(settings: HubSettings, args: argparse.Namespace) -> str:
    hub = await build_hub(settings, mqtt=False)
    try:
        if args.user_cmd == "add":
            user, token = await hub.users.add(args.name, args.role)
            print(f"user {user.name} ({user.role.value}); token shown once:", file=sys.stderr)
            return f"{token}\n"
        if args.user_cmd == "rotate":
            return f"{await hub.users.rotate(args.name)}\n"
        if args.user_cmd == "disable":
            await hub.users.set_disabled(args.name, True)
            return f"disabled {args.name}\n"
        rows = [
            "\t".join([u.name, u.role.value, *(["disabled"] if u.disabled else [])])
            for u in await hub.users.all()
        ]
        return "".join(f"{r}\n" for r in rows)
    finally:
        await hub.close()


async def _register(settings: HubSettings, device_id: str, kind: str) -> None:
    hub = await build_hub(settings, mqtt=False)
    try:
        await hub.devices.register(device_id, kind)
    finally:
        await hub.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="central-hub", description="xiuhua central hub")
    parser.add_argument("--data-dir", dest="data_dir", type=Path, help="state folder")
    parser.add_argument("--db", dest="db_url", help="SQLAlchemy async URL")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("serve", help="run ingest, the command queue and the API")
    p.add_argument("--no-api", action="store_true", help="ingest and commands only")
    p.add_argument("--mqtt-host", dest="mqtt_host")
    p.add_argument("--mqtt-port", dest="mqtt_port", type=int)
    p.add_argument("--client-id", dest="mqtt_client_id", help="stable per worker")
    p.add_argument("--port", dest="api_port", type=int, help="API port")
    p.add_argument(
        "--metrics-port", dest="metrics_port", type=int, help="serve /metrics here (--no-api)"
    )

    sub.add_parser("migrate", help="upgrade the database to the newest schema")
    p = sub.add_parser("keygen", help="create the hub signing key if missing; print its public key")

    p = sub.add_parser("model", help="sign model packages; print the model-signing key")
    msub = p.add_subparsers(dest="model_cmd", required=True)
    q = msub.add_parser("key", help="create the model-signing key if missing; print its public key")
    q = msub.add_parser("sign", help="list every file's sha256 in DIR's manifest and sign it")
    q.add_argument("directory", type=Path)
    q = msub.add_parser("verify", help="check DIR against the model-signing key")
    q.add_argument("directory", type=Path)
    cli_rollout.add_parsers(sub, msub)
    cli_keys.add_parsers(sub)
    cli_plates.add_parsers(sub)
    cli_open311.add_parsers(sub)
    cli_objects.add_parsers(sub)
    cli_vendor_file.add_parsers(sub)
    cli_service_days.add_parsers(sub)

    p = sub.add_parser("dataset", help="export a retraining set from operators' verdicts")
    dsub = p.add_subparsers(dest="dataset_cmd", required=True)
    q = dsub.add_parser("export", help="YOLO images, labels and a data card (admins)")
    q.add_argument("--since", required=True, type=_when, help="decisions from (ISO date/time)")
    q.add_argument("--until", required=True, type=_when, help="decisions before (ISO date/time)")
    q.add_argument("--out", required=True, type=Path, help="a new, empty folder")
    q.add_argument("--by", required=True, help="the admin exporting (a hub user)")
    q.add_argument("--model", type=Path, default=Path("models/street-detector"))
    q.add_argument("--codes", type=_csv, default=None, help="only these codes (0501,0504)")
    q.add_argument("--cameras", type=_csv, default=None, help="only DEVICE/CAMERA,...")
    q.add_argument("--val-share", type=float, default=0.2)
    q.add_argument("--unblurred", action="store_true", help="keep faces unblurred")

    p = sub.add_parser("provision", help="write a device's credentials, config and broker entries")
    p.add_argument("device_id")
    p.add_argument("--kind", choices=["pole", "truck"], default="pole")
    p.add_argument("--broker-dir", type=Path, default=Path("firmware_config/broker/generated"))
    p.add_argument("--out", type=Path, default=Path("firmware_config/devices/generated"))
    p.add_argument("--broker-host", default="127.0.0.1", help="address devices connect to")
    p.add_argument(
        "--broker-port",
        type=int,
        default=TLS_PORT,
        help=f"the port devices connect to: the broker's TLS listener ({TLS_PORT})",
    )
    p.add_argument(
        "--plain-port",
        type=int,
        default=PLAIN_PORT,
        help=f"the broker's plain listener, on 127.0.0.1 only ({PLAIN_PORT})",
    )
    p.add_argument(
        "--api-name",
        action="append",
        default=[],
        metavar="HOST",
        help="also issue the hub API's HTTPS certificate for this name (repeatable)",
    )
    p.add_argument(
        "--broker-name",
        action="append",
        default=[],
        metavar="HOST",
        help="another name or address the broker's certificate must carry (repeatable)",
    )
    p.add_argument("--ca-cert", type=Path, help="the city's CA certificate (default: make one)")
    p.add_argument("--ca-key", type=Path, help="its key (used in place, never copied)")
    p.add_argument(
        "--no-tls",
        dest="tls",
        action="store_false",
        help="no certificates, plain MQTT on every interface (a lab broker only)",
    )
    p.add_argument("--hub-user", default="hub")
    p.add_argument("--register", action="store_true", help="also add it to the hub's registry")

    p = sub.add_parser(
        "drop-session", help="discard a retired worker's persistent session at the broker"
    )
    p.add_argument("client_id", help="the worker's name (its --client-id)")
    p.add_argument("--mqtt-host", dest="mqtt_host")
    p.add_argument("--mqtt-port", dest="mqtt_port", type=int)

    p = sub.add_parser("user", help="manage API users")
    usub = p.add_subparsers(dest="user_cmd", required=True)
    q = usub.add_parser("add", help="create a user and print its token")
    q.add_argument("name")
    q.add_argument("--role", required=True, choices=[r.value for r in Role])
    q = usub.add_parser("rotate", help="print a new token for a user")
    q.add_argument("name")
    q = usub.add_parser("disable", help="disable a user")
    q.add_argument("name")
    usub.add_parser("list", help="list users")

    p = sub.add_parser("grid", help="check or import a city's grid (GeoJSON)")
    gsub = p.add_subparsers(dest="grid_cmd", required=True)
    q = gsub.add_parser("check", help="check a grid file strictly; store nothing")
    q.add_argument("file", type=Path)
    q = gsub.add_parser("import", help="check a grid file and make it the hub's grid")
    q.add_argument("file", type=Path)
    gsub.add_parser("show", help="say which grid the hub uses")

    p = sub.add_parser(
        "retention", help="drop photos, frames, tracks and dead letters past the city's policy"
    )
    p.add_argument("--dry-run", action="store_true", help="count only; change nothing")

    p = sub.add_parser("backup", help="write the database and evidence to a tar file")
    p.add_argument("out", type=Path)
    p = sub.add_parser("restore", help="restore a backup into an empty database and store")
    p.add_argument("archive", type=Path)
    return parser


async def _backup(settings: HubSettings, args: argparse.Namespace) -> str:
    engine = create_engine(settings.database_url)
    evidence = EvidenceStore(settings.evidence_path)
    frames = EvidenceStore(settings.frames_path)
    vendor_photos = EvidenceStore(vendor_photos_path(settings))
    try:
        if args.cmd == "backup":
            report = await backup(engine, evidence, args.out, frames, vendor_photos)
            return f"backed up {report.summary()}\n"
        report = await restore(engine, evidence, args.archive, frames, vendor_photos)
        return f"restored {report.summary()}\n"
    finally:
        await engine.dispose()


async def _retention(settings: HubSettings, dry_run: bool) -> str:
    policy = settings.retention
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        report = await apply_retention(
            engine,
            EvidenceStore(settings.evidence_path),
            EvidenceStore(settings.frames_path),
            policy,
            datetime.now(UTC),
            voice=settings.voice_path,
            dry_run=dry_run,
        )
    finally:
        await engine.dispose()
    return json.dumps(dataclasses.asdict(report)) + "\n"


def _grid(settings: HubSettings, args: argparse.Namespace) -> str:
    if args.grid_cmd == "show":
        source = grid_source(settings)
        grid, said = Grid.load(source), "in use"
    elif args.grid_cmd == "check":
        source = args.file
        grid, said = Grid.load(source, gaps=True), "valid"
    else:
        source = args.file
        grid = import_grid(source, settings)
        said = f"imported as {settings.imported_grid_path}; restart the hub to use it"
    counts = ", ".join(f"{n} {level}" for level, n in grid.level_counts().items())
    return f"{source}: {said}; version {grid.version} ({counts})\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``central-hub``; returns the exit status."""
    args = _parser().parse_args(argv)
    os.umask(0o077)  # the database, its WAL, keys, evidence: the hub's user alone
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose
        else logging.INFO
        if args.cmd == "serve"
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = _settings(args)
        if args.cmd == "serve":
            asyncio.run(serve(settings, api=not args.no_api))
        elif args.cmd == "migrate":
            print(f"database at revision {asyncio.run(_migrate(settings))}")
        elif args.cmd == "keygen":
            print(public_key_b64(load_or_create_key(settings.hub_key_path)))
        elif args.cmd == "provision":
            key = load_or_create_key(settings.hub_key_path)
            model_key = load_or_create_key(settings.model_key_path)
            result = provision_device(
                args.device_id,
                kind=args.kind,
                broker_dir=args.broker_dir,
                out_dir=args.out,
                public_key=public_key_b64(key),
                mqtt_host=args.broker_host,
                mqtt_port=args.broker_port,
                hub_user=args.hub_user,
                model_public_key=public_key_b64(model_key),
                tls=args.tls,
                plain_port=args.plain_port,
                broker_hosts=args.broker_name,
                ca_cert=args.ca_cert,
                ca_key=args.ca_key,
            )
            if args.register:
                asyncio.run(_register(settings, args.device_id, args.kind))
            print(f"config:   {result.config_path}")
            print(f"password: {result.password_path}")
            if result.device_tls is not None:
                print(f"tls:      {result.device_tls.cert} {result.device_tls.key} (and ca.crt)")
            print(f"broker:   {result.password_file} {result.acl_file} {result.broker_config}")
            print(f"hub user: {args.hub_user} (password in {result.hub_password_path})")
            if result.broker_tls is not None:
                tls = result.broker_tls
                print(f"broker certificate: {tls.server.cert}")
                print(
                    f"hub TLS:  XH_HUB_MQTT_PORT={args.broker_port} XH_HUB_MQTT_TLS_CA={tls.ca} "
                    f"XH_HUB_MQTT_TLS_CERT={tls.hub.cert} XH_HUB_MQTT_TLS_KEY={tls.hub.key}"
                )
            print("models:   the unit loads only packages signed by `central-hub model sign`")
            if args.api_name:
                ca = pki.load_or_create_ca(
                    args.broker_dir / "tls",
                    datetime.now(UTC),
                    ca_cert=args.ca_cert,
                    ca_key=args.ca_key,
                )
                api = ensure_api_tls(
                    args.broker_dir, ca, hosts=args.api_name, now=datetime.now(UTC)
                )
                print(
                    f"API TLS:  XH_HUB_API_TLS_CERT={api.cert} XH_HUB_API_TLS_KEY={api.key} "
                    f"XH_HUB_PUBLIC_URL=https://{args.api_name[0]}:<api port>"
                )
        elif args.cmd == "dataset":
            sys.stdout.write(asyncio.run(_dataset(settings, args)))
        elif (args.cmd, getattr(args, "model_cmd", None)) == ("model", "publish") or (
            args.cmd == "rollout"
        ):
            sys.stdout.write(asyncio.run(cli_rollout.run(settings, args)))
        elif args.cmd == "model":
            sys.stdout.write(_model(settings, args))
        elif args.cmd == "drop-session":
            key = load_or_create_key(settings.hub_key_path, create=False)
            client_id = hub_client_id(args.client_id, identity_key(settings, key))
            settings.check_mqtt_tls()
            drop_session(
                host=settings.mqtt_host,
                port=settings.mqtt_port,
                client_id=client_id,
                username=settings.mqtt_username,
                password=settings.mqtt_secret(),
                tls_ca=settings.mqtt_tls_ca,
                tls_cert=settings.mqtt_tls_cert,
                tls_key=settings.mqtt_tls_key,
            )
            print(f"session {client_id} dropped")
        elif args.cmd == "user":
            sys.stdout.write(asyncio.run(_user(settings, args)))
        elif args.cmd == "grid":
            sys.stdout.write(_grid(settings, args))
        elif args.cmd == "plates":
            return cli_plates.run(settings, args)
        elif args.cmd == "open311":
            sys.stdout.write(asyncio.run(cli_open311.run(settings, args)))
        elif args.cmd in ("objects", "vehicles"):
            return asyncio.run(cli_objects.run(settings, args))
        elif args.cmd == "service-days":
            return cli_service_days.run(settings, args)
        elif args.cmd == "vendor-file":
            sys.stdout.write(cli_vendor_file.run(args))
        elif args.cmd == "keys":
            sys.stdout.write(asyncio.run(cli_keys.run(settings, args)))
        elif args.cmd == "retention":
            sys.stdout.write(asyncio.run(_retention(settings, args.dry_run)))
        elif args.cmd in ("backup", "restore"):
            sys.stdout.write(asyncio.run(_backup(settings, args)))
    except ValidationError as exc:
        print(f"central-hub: bad settings: {exc}", file=sys.stderr)
        return 2
    except GridError as exc:
        if len(exc.problems) > 1:
            where = str(exc).split(": ", 1)[0]
            print(f"central-hub: {where}: {len(exc.problems)} problems", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        else:
            print(f"central-hub: {exc}", file=sys.stderr)
        return 1
    except PackageError as exc:
        print(f"central-hub: refused: {exc}", file=sys.stderr)
        return 1
    except ModelError as exc:
        print(f"central-hub: {exc}", file=sys.stderr)
        return 1
    except (HubError, DomainError) as exc:
        print(f"central-hub: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _when(text: str) -> datetime:
    """An ISO date or date-time; a time without a zone is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _csv(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


async def _dataset(settings: HubSettings, args: argparse.Namespace) -> str:
    """``central-hub dataset export``: only an admin may, and the export is recorded."""
    hub = await build_hub(settings, mqtt=False)
    try:
        user = next((u for u in await hub.users.all() if u.name == args.by), None)
        if user is None or user.disabled or user.role is not Role.ADMIN:
            raise HubError(f"{args.by!r} is not an enabled admin: only admins export datasets")
        options = ExportOptions(
            since=args.since,
            until=args.until,
            out=args.out,
            classes=load_manifest(args.model).labels,
            by=user.name,
            codes=args.codes,
            cameras=args.cameras,
            val_share=args.val_share,
            blur_faces=not args.unblurred,
            zone=str(hub.calendar.zone),
        )
        report = await export_dataset(hub.engine, hub.frames, options, hub.clock())
        return f"exported to {args.out}: {report.summary()}\n"
    finally:
        await hub.close()


def _model(settings: HubSettings, args: argparse.Namespace) -> str:
    """``central-hub model key|sign|verify``: the model-signing key and packages."""
    path = settings.model_key_path
    if args.model_cmd == "verify" and not path.exists():
        raise HubError(f"no model-signing key at {path}: run `central-hub model key`")
    key = load_or_create_key(path)
    if args.model_cmd == "key":
        return public_key_b64(key) + "\n"
    if args.model_cmd == "sign":
        files = sign_package(args.directory, key)
        return f"signed {args.directory}: {len(files)} files ({', '.join(files)})\n"
    files = verify_package(args.directory, key.public_key())
    return f"{args.directory}: signature and {len(files)} files verified\n"


if __name__ == "__main__":
    raise SystemExit(main())
