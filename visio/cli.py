"""The ``visio`` command: db upgrade, seed, serve, worker, users."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from visio.db import database_for
from visio.domain.messages import _
from visio.errors import NotFound, VisioError
from visio.i18n import DEFAULT_LANGUAGE, catalogue
from visio.logs import configure_logging
from visio.migrate import upgrade
from visio.security import password_hasher
from visio.services import accounts, audit
from visio.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action",
                                                                     required=True)
    db.add_parser("upgrade", help="apply every Alembic migration")
    seed = sub.add_parser("seed", help="load data")
    seed.add_argument("--demo", action="store_true", required=True,
                      help="the Département du Nord demo (idempotent)")
    serve = sub.add_parser("serve", help="serve the API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes sharing the port (SO_REUSEPORT); default 1")
    # Set by the parent of --workers on each child: bind with SO_REUSEPORT.
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("worker", help="send due notifications (the dispatcher alone)")
    users = sub.add_parser("users", help="accounts").add_subparsers(dest="action",
                                                                    required=True)
    create = users.add_parser("create", help="create an account; password on stdin")
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=accounts.ROLES)
    create.add_argument("--name", help="display name (default: the e-mail)")
    create.add_argument("--site", action="append", default=[], help="site id (agents)")
    create.add_argument("--desk", help="desk id (staff)")
    create.add_argument("--departement", action="append", default=[],
                        help="INSEE code of a département (coordinators); repeat for more")
    users.add_parser("list", help="list accounts")
    grant = users.add_parser("grant", help="give an account its sites, desk or départements "
                             "(replacing what it had; e.g. after a ProConnect sign-in)")
    grant.add_argument("--email", required=True)
    grant.add_argument("--site", action="append", default=[], help="site id (agents)")
    grant.add_argument("--desk", help="desk id (staff: a staff member is made there)")
    grant.add_argument("--staff", help="staff member id (staff: linked to it)")
    grant.add_argument("--departement", action="append", default=[],
                       help="INSEE code of a département (coordinators); repeat for more")
    purge = sub.add_parser("purge", help="erase the personal data the retention policy "
                           "no longer keeps")
    purge.add_argument("--dry-run", action="store_true",
                       help="only say how many rows of each kind would go")
    trail = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="action",
                                                                           required=True)
    trail.add_parser("verify", help="check the hash chain; say which entry breaks it")
    return parser


async def _purge(settings: Settings, *, dry_run: bool) -> dict[str, int]:
    from visio.clock import utcnow
    from visio.services import retention

    db = database_for(settings)
    policy = retention.Policy.from_settings(settings)
    try:
        if dry_run:
            return await retention.due(db=db, policy=policy, now=utcnow())
        return await retention.purge(db=db, policy=policy, now=utcnow())
    finally:
        await db.dispose()


async def _verify(settings: Settings) -> audit.Verdict:
    db = database_for(settings)
    try:
        return await audit.verify(db=db)
    finally:
        await db.dispose()


async def _create_user(settings: Settings, args: argparse.Namespace, password: str) -> str:
    db = database_for(settings)
    try:
        user = await accounts.create_user(
            db=db, hasher=password_hasher(), email=args.email, password=password,
            role=args.role, display_name=args.name or args.email, site_ids=args.site,
            desk_id=args.desk, departements=args.departement)
    finally:
        await db.dispose()
    return user.id


async def _grant(settings: Settings, args: argparse.Namespace) -> accounts.UserSummary:
    db = database_for(settings)
    try:
        email = args.email.strip().lower()
        found = [u for u in await accounts.list_users(db=db) if u.email == email]
        if not found:
            raise NotFound(_("There is no account {user_id}.", user_id=email))
        return await accounts.grant(db=db, user_id=found[0].id, site_ids=args.site,
                                    desk_id=args.desk, staff_id=args.staff,
                                    departements=args.departement)
    finally:
        await db.dispose()


async def _list_users(settings: Settings) -> list[accounts.UserSummary]:
    db = database_for(settings)
    try:
        return await accounts.list_users(db=db)
    finally:
        await db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "db":
        upgrade(settings.database_url)
        print("Database is at the latest schema.")
        return 0
    if args.command == "seed":
        from visio.seed import seed_demo

        print(asyncio.run(seed_demo(settings)))
        return 0
    if args.command == "worker":
        from visio.notify.dispatcher import run_worker

        asyncio.run(run_worker(settings))
        return 0
    if args.command == "serve":
        for name in sorted(settings.extra):
            if not name.startswith("VISIO_TEST_") and name != "VISIO_REQUIRE_SERVICES":
                print(f"warning: {name} is not a visio setting (a typo?)", file=sys.stderr)
        if not settings.secret_key:
            print("VISIO_SECRET_KEY (or VISIO_SECRET_KEY_FILE) must be set.", file=sys.stderr)
            return 2
        host, port = args.host or settings.host, args.port or settings.port
        if args.workers < 1:
            print("--workers must be at least 1.", file=sys.stderr)
            return 2
        if args.workers > 1:
            from visio.supervisor import supervise

            if not settings.redis_url:
                print("warning: without VISIO_REDIS_URL the two sides of a call may reach "
                      "different processes and never meet", file=sys.stderr)
            return supervise(workers=args.workers, host=host, port=port)
        from visio.app import create_app
        from visio.perf import tune_gc
        from visio.serving import serve

        app = create_app(settings)
        tune_gc()  # the server's garbage-collector settings, once start-up is done
        # SIGTERM: stop accepting, close sockets (1012), let requests finish, then exit.
        serve(app, host=host, port=port, reuse_port=args.reuse_port,
              grace=settings.shutdown_grace_seconds)
        return 0
    if args.command == "purge":
        counts = asyncio.run(_purge(settings, dry_run=args.dry_run))
        verb = "would go" if args.dry_run else "purged"
        for kind, count in counts.items():
            print(f"{kind}\t{count}\t{verb}")
        return 0
    if args.command == "audit":
        verdict = asyncio.run(_verify(settings))
        for problem in verdict.problems:
            print(f"{problem.kind}\t{problem.seq}\t{problem.message}")
        print(f"{verdict.checked} entries checked; the chain's head is entry "
              f"{verdict.head_seq}, hash {verdict.head_hash}")
        if not verdict.intact:
            print("The audit trail has been tampered with.", file=sys.stderr)
            return 1
        return 0
    if args.action == "create":
        password = sys.stdin.readline().rstrip("\n")
        try:
            user_id = asyncio.run(_create_user(settings, args, password))
        except VisioError as err:
            print(catalogue(DEFAULT_LANGUAGE).render(err.detail), file=sys.stderr)
            return 1
        print(user_id)
        return 0
    if args.action == "grant":
        try:
            granted = asyncio.run(_grant(settings, args))
        except VisioError as err:
            print(catalogue(DEFAULT_LANGUAGE).render(err.detail), file=sys.stderr)
            return 1
        print(f"{granted.id}\t{granted.role}\t{granted.email}\t{_where(granted)}")
        return 0
    for user in asyncio.run(_list_users(settings)):
        print(f"{user.id}\t{user.role}\t{user.email}\t{_where(user)}")
    return 0


def _where(user: accounts.UserSummary) -> str:
    return (",".join(user.site_ids) or user.desk_id
            or ",".join(f"dep:{d}" for d in user.departements) or "-")


if __name__ == "__main__":
    raise SystemExit(main())
