"""`panen`: serve, worker, migrate, users create, demo."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from core.auth import ROLES


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from core.settings import check_can_serve, get_settings
    from live.wire import WireSocket

    check_can_serve(get_settings())
    uvicorn.run(
        "panen.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level="warning",
        proxy_headers=True,
        lifespan="on",
        timeout_graceful_shutdown=5,
        # Longer than the idle timeout of the proxies in front (commonly 60 s), so a proxy
        # never sends a request down a connection this server is just closing.
        timeout_keep_alive=75,
        # Sockets on our own protocol (live.wire): frames framed once for every socket, so
        # no per-socket compression; client frames are small (the gateway closes with 1009
        # over 4 KiB).
        ws=WireSocket,
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from core.settings import check_can_serve, get_settings
    from panen.worker import run

    check_can_serve(get_settings())
    run()
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from core.settings import get_settings
    from panen.migrate import upgrade

    upgrade(get_settings().database_url)
    print("database is at the latest migration")
    return 0


def _users_create(args: argparse.Namespace) -> int:
    from core.accounts import create_user
    from core.db import Database
    from core.errors import ApiError
    from core.settings import get_settings

    password = args.password or os.environ.get("PANEN_USER_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            print("give --password or PANEN_USER_PASSWORD", file=sys.stderr)
            return 2
        password = getpass.getpass(f"password for {args.handle}: ")
    if len(password) < 8:
        print("the password needs at least 8 characters", file=sys.stderr)
        return 2

    async def run() -> int:
        db = Database(get_settings().database_url, pool_size=1)
        try:
            user = await create_user(
                db, args.handle, password, args.display_name or args.handle, args.role
            )
        except ApiError as err:
            print(f"error: {err.code}: {err.message}", file=sys.stderr)
            return 1
        finally:
            await db.close()
        print(f"created {user.handle} ({user.id}) with roles {', '.join(user.roles)}")
        return 0

    return asyncio.run(run())


def _demo(args: argparse.Namespace) -> int:
    from panen.demo import run_demo

    return run_demo(port=args.port, home=args.home, simulate=args.simulate)


def _keygen(args: argparse.Namespace) -> int:
    from core.settings import get_settings
    from donations.transparency.signing import load_or_create

    path = get_settings().signing_key_file
    if path.exists():
        print(f"{path} already exists; its key is kept", file=sys.stderr)
        return 1
    key = load_or_create(path)
    print(f"created {path}; the log's public key: {key.verifier.vkey}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from donations.transparency.verify import verify_files

    status, lines = verify_files(
        args.receipt, args.checkpoint, args.public_key, args.server, args.pin
    )
    print("\n".join(lines), file=sys.stdout if status == 0 else sys.stderr)
    return status


def _emulator(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from panen.emulator import Midtrans, create_app

    env = os.environ
    emulator = Midtrans(
        server_key=env.get("PANEN_MIDTRANS_SERVER_KEY", ""),
        iris_creator_key=env.get("PANEN_IRIS_CREATOR_KEY", ""),
        iris_approver_key=env.get("PANEN_IRIS_APPROVER_KEY", ""),
        iris_merchant_key=env.get("PANEN_IRIS_MERCHANT_KEY", ""),
        iris_callback_url=args.iris_callback,
        iris_auto_complete=args.iris_auto_complete,
    )
    if not emulator.server_key:
        print("panen emulator: set PANEN_MIDTRANS_SERVER_KEY (the key it accepts)", file=sys.stderr)
        return 2
    uvicorn.run(create_app(emulator), host=args.host, port=args.port, log_level="warning")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="panen", description="Livestream charity-commerce")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=_serve)

    sub.add_parser("worker", help="run the background workers").set_defaults(func=_worker)
    sub.add_parser("migrate", help="upgrade the database to the latest migration").set_defaults(
        func=_migrate
    )

    users = sub.add_parser("users", help="manage users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser("create", help="create a user")
    create.add_argument("--handle", required=True)
    create.add_argument(
        "--role",
        action="append",
        choices=sorted(ROLES),
        required=True,
        help="a role; repeat for several",
    )
    create.add_argument("--display-name")
    create.add_argument("--password", help="or PANEN_USER_PASSWORD, or asked on a terminal")
    create.set_defaults(func=_users_create)

    demo = sub.add_parser("demo", help="run everything on embedded servers under ./.panen/")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--home", default=".panen", help="where the embedded servers keep data")
    demo.add_argument(
        "--simulate",
        type=int,
        default=0,
        metavar="N",
        help="add N simulated viewers who chat, like, buy and donate (to the demo already"
        " running on --port, if there is one)",
    )
    demo.set_defaults(func=_demo)

    emulator = sub.add_parser(
        "emulator",
        help="a local Midtrans (Snap, status, refunds, Iris) for tests and the demo",
    )
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8900)
    emulator.add_argument("--iris-callback", help="where Iris's payout callbacks go")
    emulator.add_argument(
        "--iris-auto-complete",
        action="store_true",
        help="complete an approved payout a second later (the demo)",
    )
    emulator.set_defaults(func=_emulator)

    keygen = sub.add_parser("keygen", help="create the transparency log's signing key, once")
    keygen.set_defaults(func=_keygen)

    verify = sub.add_parser("verify", help="check a donation or pledge receipt offline")
    verify.add_argument("receipt", help="the receipt JSON file")
    verify.add_argument("--checkpoint", help="a checkpoint JSON you saved earlier")
    verify.add_argument(
        "--public-key", help="the log's key: vkey, base64, or a file holding either"
    )
    verify.add_argument(
        "--pin",
        metavar="FILE",
        help="a file holding the key you trust; if it does not exist, the key is fetched"
        " once from --server and kept there",
    )
    verify.add_argument(
        "--server", help="the log's address, to fetch a consistency proof (or a key to pin)"
    )
    verify.set_defaults(func=_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    from core.settings import SettingsError

    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"panen: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
