"""`ocireg serve [CONFIG]`, `ocireg verify CONFIG`, `ocireg gc CONFIG [--dry-run]`,
`ocireg scrub CONFIG`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ocireg.config import DEFAULT_CONFIG, Config, build_config, load_config, read_config_file
from ocireg.errors import ConfigError, RegistryError
from ocireg.logs import setup_logging
from ocireg.meta import MetaUnavailable
from ocireg.storage import StorageUnavailable

if TYPE_CHECKING:
    from ocireg.ops.runs import Checkpoint
    from ocireg.registry import ImageStore

log = logging.getLogger("ocireg.cli")
SCRUB_FOUND_PROBLEMS = 2
BACKEND_FAILED = 2  # as when the start-up check of `serve` or `rebuild-meta` fails


def _load(path: str | None) -> Config:
    return load_config(Path(path) if path else None)


def _open_store(config: Config) -> ImageStore:
    from ocireg.server.services import build_store

    # The same lock directory and stores as the server's workers: safe while it serves.
    return build_store(config)


def _auth_warnings(config: Config) -> list[str]:
    """The auth sections checked in full (files read, certificate parsed, globs compiled)."""
    from ocireg.auth.core import check_auth

    return check_auth(config)


def _report_warnings(config: Config) -> None:
    if config.warnings:
        keys = list(config.warnings)
        log.warning(
            "configuration keys accepted but not implemented by ocireg yet: " + ", ".join(keys),
            extra={"keys": keys},
        )
    for notice in config.notices:
        log.warning(notice)


def cmd_serve(args: argparse.Namespace) -> int:
    from ocireg.server.reload import identity_or_none

    # SIGHUP does nothing until Granian takes it over (`ocireg.launch`, the entry point).
    source = Path(args.config) if args.config else None
    read = identity_or_none(source)  # a change from now on is applied once serving
    raw = read_config_file(source) if source else DEFAULT_CONFIG
    config = build_config(raw, source=source)  # the auth files are read just below
    setup_logging(config.log.level, config.log.output, config.log.audit)
    _report_warnings(config)
    # Fail here, once, rather than in every worker process.
    for warning in _auth_warnings(config):
        log.warning(warning)
    problem = _check_backends(config)
    if problem is not None:
        print(f"ocireg: cannot start: {problem}", file=sys.stderr)
        return 2
    from ocireg.server.runner import serve

    serve(config, raw, read)
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    """Exit 0 when every member answers and routes as CONFIG says, else 1."""
    config = _load(args.config)
    if config.cluster is None:
        print(f"{args.config}: no cluster section", file=sys.stderr)
        return 1
    from ocireg.cluster.report import report

    text, healthy = report(config, args.user)
    print(text)
    return 0 if healthy else 1


def cmd_verify(args: argparse.Namespace) -> int:
    config = _load(args.config)
    for key in config.warnings:
        print(f"warning: {key}: zot option not implemented by ocireg; ignored", file=sys.stderr)
    for notice in config.notices:
        print(f"warning: {notice}", file=sys.stderr)
    from ocireg.sync.settings import check_sync

    for warning in check_sync(config):
        print(f"warning: {warning}", file=sys.stderr)
    for warning in _auth_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.config}: ok")
    return 0


def _check_backends(config: Config) -> str | None:
    from ocireg.server.services import check_backends

    return asyncio.run(check_backends(config))


def cmd_rebuild_meta(args: argparse.Namespace) -> int:
    """Refill the metadata store from storage; binds no port, so it runs beside members."""
    config = _load(args.config)
    setup_logging(config.log.level, config.log.output, config.log.audit)
    problem = _check_backends(config)
    if problem is not None:
        print(f"ocireg: cannot rebuild: {problem}", file=sys.stderr)
        return 2

    async def run() -> int:
        store = _open_store(config)
        try:
            return await store.rebuild_meta(store.at_once)
        finally:
            await store.close()

    count = asyncio.run(run())
    print(f"metadata store rebuilt from storage: {count} referrers")
    return 0


def _owned(config: Config) -> Callable[[str], bool]:
    """In a cluster, the repositories of the member this config describes, as the server."""
    from ocireg.cluster.membership import membership_from_config
    from ocireg.server.maintenance import owner_filter

    return owner_filter(membership_from_config(config))


def _checkpoint(config: Config, job: str, from_start: bool) -> Checkpoint:
    from ocireg.server.maintenance import checkpoint_of

    checkpoint = checkpoint_of(config, job)
    if from_start:
        checkpoint.clear()
    return checkpoint


def _repository_name(value: str) -> str:
    """argparse type: a repository name by the distribution grammar (usage error if not)."""
    from ocireg.names import validate_name

    try:
        return validate_name(value)
    except RegistryError as exc:
        raise argparse.ArgumentTypeError(f"invalid repository name: {value!r}") from exc


def _print_line(report: dict[str, object]) -> None:
    print(json.dumps(report, separators=(",", ":")), flush=True)


def cmd_gc(args: argparse.Namespace) -> int:
    """Collect every repository once; one JSON line per repository on stdout, as each is
    done. A run that was stopped resumes after the last repository it finished."""
    config = _load(args.config)
    setup_logging(config.log.level, config.log.output, config.log.audit)
    if not config.storage.gc:
        print("warning: storage.gc is false; collecting because asked to", file=sys.stderr)
    # A bucket that does not exist lists as empty: collecting it would report nothing done.
    if (problem := _check_backends(config)) is not None:
        print(f"ocireg: cannot collect: {problem}", file=sys.stderr)
        return 2
    from ocireg.ops.gc import GarbageCollector

    async def run() -> None:
        store = _open_store(config)
        try:
            collector = GarbageCollector.of(store, config, dry_run=args.dry_run)
            if args.repository:
                # Named repositories only (one just cleaned up, a test): not a run over the
                # whole storage, so it neither resumes nor moves the checkpoint.
                owns = _owned(config)
                for repo in args.repository:
                    if not owns(repo):
                        print(f"ocireg: {repo}: owned by another member", file=sys.stderr)
                        continue
                    _print_line((await collector.collect(repo)).as_json())
                return
            # A dry run changes nothing, so it neither resumes nor leaves a checkpoint.
            checkpoint = None if args.dry_run else _checkpoint(config, "gc", args.from_start)
            async for report in collector.run(_owned(config), checkpoint, store.at_once):
                _print_line(report.as_json())
        finally:
            await store.close()

    asyncio.run(run())
    return 0


def cmd_scrub(args: argparse.Namespace) -> int:
    """Check every repository once; one JSON line per problem on stdout as found, a summary
    on stderr; exit status 2 when problems were found. Resumes like `gc`."""
    config = _load(args.config)
    setup_logging(config.log.level, config.log.output, config.log.audit)
    if (problem := _check_backends(config)) is not None:
        print(f"ocireg: cannot scrub: {problem}", file=sys.stderr)
        return 1  # 2 says problems were found
    from ocireg.ops.scrub import Scrubber

    summary = dict.fromkeys(("repositories", "blobs", "bytes", "problems"), 0)

    async def run() -> None:
        store = _open_store(config)
        try:
            checkpoint = _checkpoint(config, "scrub", args.from_start)
            async for report in Scrubber(store).run(_owned(config), checkpoint, store.at_once):
                for problem in report.problems:
                    print(json.dumps(problem, separators=(",", ":")), flush=True)
                summary["repositories"] += 1
                summary["blobs"] += report.blobs
                summary["bytes"] += report.bytes
                summary["problems"] += len(report.problems)
        finally:
            await store.close()

    asyncio.run(run())
    print(json.dumps(summary), file=sys.stderr)
    return SCRUB_FOUND_PROBLEMS if summary["problems"] else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocireg", description="OCI registry, zot-compatible")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the registry")
    serve.add_argument(
        "config", nargs="?", help="zot-style config (JSON or YAML); default embedded"
    )
    serve.set_defaults(func=cmd_serve)
    verify = sub.add_parser("verify", help="check a config file and exit")
    verify.add_argument("config")
    verify.set_defaults(func=cmd_verify)
    rebuild = sub.add_parser("rebuild-meta", help="rebuild the metadata store from storage")
    rebuild.add_argument("config")
    rebuild.set_defaults(func=cmd_rebuild_meta)
    gc = sub.add_parser("gc", help="garbage-collect every repository once")
    gc.add_argument("config")
    gc.add_argument(
        "--dry-run", action="store_true", help="report what would be removed, remove nothing"
    )
    gc.add_argument(
        "--repository",
        action="append",
        type=_repository_name,
        metavar="NAME",
        help="collect only this repository (repeatable); no checkpoint is read or written",
    )
    scrub = sub.add_parser("scrub", help="re-hash blobs and check manifests; never deletes")
    scrub.add_argument("config")
    for job, run in ((gc, cmd_gc), (scrub, cmd_scrub)):
        job.add_argument(
            "--from-start",
            action="store_true",
            help="ignore where an interrupted run stopped; go over every repository",
        )
        job.set_defaults(func=run)
    cluster = sub.add_parser("cluster", help="cluster commands")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True)
    status = cluster_sub.add_parser("status", help="ask every member; print one table")
    status.add_argument("config")
    status.add_argument("--user", help="user:password, when the members require a login")
    status.set_defaults(func=cmd_cluster_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"ocireg: invalid configuration: {exc}", file=sys.stderr)
        return 1
    except (MetaUnavailable, StorageUnavailable) as exc:
        # A backend lost after the start-up check, or refusing a command (e.g. an ACL).
        print(f"ocireg {args.command}: backend unavailable: {exc}", file=sys.stderr)
        return BACKEND_FAILED
    except RegistryError as exc:  # the same, as the image store reports it
        print(f"ocireg {args.command}: {exc} {exc.detail or ''}", file=sys.stderr)
        return BACKEND_FAILED
