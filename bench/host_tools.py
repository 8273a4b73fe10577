"""The host's tools on the hot path: a chat line under the room's rules, and a product photo.

Chat (one process, real Redis and PostgreSQL): L lines said through `live.chat.say` by 50
viewers of one room, concurrently, with

- `no rules` (the baseline: the rules hash is there, and empty),
- `200 blocked words` (each line is checked against every word), and
- `200 words + 5,000 bans` (a host with a long ban list);

each the median and p99 of a line's latency and the lines a second, in this one run.

Photos: `normalise_photo` (decode, turn upright, bound to 1200 px, WebP) on a 12-megapixel
JPEG, a 48-megapixel JPEG and a 4096 x 4096 PNG: median ms, and the process's peak RSS.

    .venv/bin/python bench/host_tools.py [--lines 5000] [--photos 5]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import resource
import secrets
import statistics
import time

from flash_sale import fresh_deployment, seed_session  # bench/ sibling
from PIL import Image, ImageDraw
from sqlalchemy import update

from commerce.catalog.service import normalise_photo
from commerce.sessions.models import ChatBan, LiveSession
from core.models import User
from core.services import Services
from core.settings import Settings
from live import chat
from live.history import TopicKeys
from panen.app import create_app

VIEWERS = 50


async def chat_case(services: Services, session_id: str, lines: int) -> tuple[float, float, float]:
    topic = f"session:{session_id}"
    tk = TopicKeys.of(services.keys, topic)
    latencies: list[float] = []
    per_viewer = lines // VIEWERS

    async def viewer(n: int) -> None:
        for k in range(per_viewer):
            t0 = time.perf_counter()
            await chat.say(
                services, tk, topic, topic, f"usr_v{n}", f"V{n}", f"halo {k} dari {n}", exempt=False
            )
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(viewer(n) for n in range(VIEWERS)))
    wall = time.perf_counter() - t0
    latencies.sort()
    return (
        statistics.median(latencies) * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
        len(latencies) / wall,
    )


async def chat_runs(settings: Settings, lines: int) -> dict[str, tuple[float, float, float]]:
    app = create_app(settings)
    out = {}
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        import live.limits as limits

        limits.CHAT_LINES_PER_WINDOW = 10**9  # measure the rules, not the rate limit
        # Slow mode on (1 s) holds each viewer to a line a second: it is measured on its own
        # as the check it adds, with the viewers' lines spread over distinct users.
        cases = [
            ("no rules", 0, 0, 0),
            ("200 blocked words", 200, 0, 0),
            ("200 words + 5,000 bans", 200, 0, 5000),
        ]
        for name, words, slow, bans in cases:
            world = await seed_session(services.db)
            banned = [f"usr_b{i}_{secrets.token_hex(3)}" for i in range(bans)]
            async with services.db.transaction() as s:
                await s.execute(
                    update(LiveSession)
                    .where(LiveSession.id == world["session"])
                    .values(
                        blocked_words=[f"kata{i} terlarang" for i in range(words)],
                        slow_mode_s=slow,
                    )
                )
                s.add_all(
                    User(id=u, handle=u[:32], display_name="B", password_hash="x", roles=["viewer"])
                    for u in banned
                )
                await s.flush()
                s.add_all(
                    ChatBan(host_id=world["user"], user_id=u, display_name="B") for u in banned
                )
            out[name] = await chat_case(services, world["session"], lines)
    return out


def photo(kind: str) -> bytes:
    size = {"12 MP JPEG": (4000, 3000), "48 MP JPEG": (8000, 6000), "4096² PNG": (4096, 4096)}[kind]
    img = Image.new("RGB", size, (110, 170, 70))
    draw = ImageDraw.Draw(img)
    for i in range(0, size[0], 97):  # some detail, so encoders have work to do
        draw.line((i, 0, size[0] - i, size[1]), fill=(200, 220 - i % 50, 90), width=9)
    out = io.BytesIO()
    img.save(out, "JPEG" if "JPEG" in kind else "PNG", quality=90)
    return out.getvalue()


def photo_runs(runs: int) -> dict[str, tuple[float, int, float]]:
    out = {}
    for kind in ("12 MP JPEG", "48 MP JPEG", "4096² PNG"):
        raw = photo(kind)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            result = normalise_photo(raw)
            times.append(time.perf_counter() - t0)
        out[kind] = (statistics.median(times) * 1000, len(raw), len(result.data) / 1024)
    return out


def main(server: str, redis_url: str, lines: int, runs: int) -> None:
    with fresh_deployment(server, redis_url, "host", environment="development") as settings:
        chats = asyncio.run(chat_runs(settings, lines))
    base = chats["no rules"][2]
    print(f"chat: {lines} lines by {VIEWERS} viewers of one room, concurrently")
    print(f"{'case':32} {'p50 ms':>8} {'p99 ms':>8} {'lines/s':>9} {'vs base':>8}")
    for name_, (p50, p99, rate) in chats.items():
        print(f"{name_:32} {p50:8.2f} {p99:8.2f} {rate:9.0f} {rate / base:8.2f}")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    photos = photo_runs(runs)
    print(f"\nphotos (median of {runs}); peak RSS before {rss0:.0f} MB")
    print(f"{'upload':14} {'size MB':>8} {'ms':>8} {'stored KB':>10}")
    for kind, (ms, size, kb) in photos.items():
        print(f"{kind:14} {size / 2**20:8.1f} {ms:8.0f} {kb:10.0f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS after the photos: {rss:.0f} MB")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--lines", type=int, default=5000)
    p.add_argument("--photos", type=int, default=5)
    a = p.parse_args()
    main(a.server, a.redis, a.lines, a.photos)
