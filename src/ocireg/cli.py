"""`ocireg serve [CONFIG]`, `ocireg verify CONFIG`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from ocireg.config import Config, load_config
from ocireg.errors import ConfigError
from ocireg.logs import setup_logging

log = logging.getLogger("ocireg.cli")


def _load(path: str | None) -> Config:
    config = load_config(Path(path) if path else None)
    return config


def _auth_warnings(config: Config) -> list[str]:
    """The auth sections checked in full (files read, certificate parsed, globs compiled)."""
    from ocireg.auth.core import check_auth

    return check_auth(config)


def _report_warnings(config: Config) -> None:
    if config.warnings:
        log.warning(
            "configuration keys accepted but not implemented by ocireg yet: "
            + ", ".join(config.warnings),
            extra={"keys": list(config.warnings)},
        )


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    setup_logging(config.log.level, config.log.output)
    _report_warnings(config)
    # Fail here, once, rather than in every worker process.
    for warning in _auth_warnings(config):
        log.warning(warning)
    problem = _check_backends(config)
    if problem is not None:
        print(f"ocireg: cannot start: {problem}", file=sys.stderr)
        return 2
    from ocireg.server.runner import serve

    serve(config)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    config = _load(args.config)
    for key in config.warnings:
        print(f"warning: {key}: zot option not implemented by ocireg; ignored", file=sys.stderr)
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
    setup_logging(config.log.level, config.log.output)
    problem = _check_backends(config)
    if problem is not None:
        print(f"ocireg: cannot rebuild: {problem}", file=sys.stderr)
        return 2
    from ocireg.server.services import build_store

    async def run() -> int:
        store = build_store(config)
        try:
            return await store.rebuild_meta()
        finally:
            await store.close()

    count = asyncio.run(run())
    print(f"metadata store rebuilt from storage: {count} referrers")
    return 0


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"ocireg: invalid configuration: {exc}", file=sys.stderr)
        return 1
