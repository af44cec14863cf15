"""The ``fewshot`` command line."""

from __future__ import annotations

import argparse
import os
import sys


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from app.db.migrate import upgrade_head
    from app.settings import Settings

    url = args.database_url or Settings().database_url
    upgrade_head(url)
    print(f"database at head: {url.split('@')[-1]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fewshot", description="Few-shot intent classification service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server (settings from FEWSHOT_* variables)")
    serve.add_argument("--host", default=os.environ.get("FEWSHOT_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("FEWSHOT_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1, help="worker processes (each loads the encoder)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema to the latest version")
    migrate.add_argument("--database-url", default=None, help="default: FEWSHOT_DATABASE_URL")
    migrate.set_defaults(run=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
