"""Stock counters in Redis (commerce/inventory.py): a batch of concurrent reservations is
one script call that answers each request exactly as if it had come alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from commerce.stock import service as inventory
from core.ids import new_id
from core.services import Services
from core.settings import Settings


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    s = await Services.start(settings, pool_size=1, jobs=False)
    yield s
    await s.close()


async def ask(services: Services, sid: str, inv: str, buyer: str, key: str, qty: int) -> Any:
    return await inventory.reserve(
        services,
        session_id=sid,
        inventory_id=inv,
        buyer_id=buyer,
        idempotency_key=key,
        fingerprint=f"{inv}:{qty}",
        quantity=qty,
        limit=2,
        order_id=new_id("ord"),
        expires_ms=0,
    )


async def test_a_batch_of_reservations_is_one_script_call_answering_each_in_arrival_order(
    services: Services, monkeypatch: pytest.MonkeyPatch
):
    sid, inv = new_id("ses"), new_id("lst")
    keys = [services.keys.session(sid, n, inv) for n in ("inv", "bought", "holds")]
    await inventory.run(services, inventory.REBUILD, keys, 7, 3)  # generation 7, stock 3
    calls: list[list[int]] = []  # per round trip: the requests in each reserve call
    real_run_scripts = inventory.run_scripts

    async def counted(redis: Any, batch: Any, **options: Any) -> list[Any]:
        calls.append([len(args) // 7 for script, _, args in batch if script is inventory.RESERVE])
        return await real_run_scripts(redis, batch, **options)

    monkeypatch.setattr(inventory, "run_scripts", counted)
    a1, a1_again, a2, b, c = await asyncio.gather(
        ask(services, sid, inv, "usr_a", "k1", 1),
        ask(services, sid, inv, "usr_a", "k1", 1),  # the same key again, in the same batch
        ask(services, sid, inv, "usr_a", "k2", 2),  # 1 held + 2 > the limit of 2
        ask(services, sid, inv, "usr_b", "k1", 2),
        ask(services, sid, inv, "usr_c", "k1", 1),  # nothing left
    )
    assert calls == [[5]]  # one round trip, one script call for all five
    assert (a1.outcome, a1.remaining, a1.generation) == ("ok", 2, 7)
    assert a1_again.outcome == "dup" and a1_again.prior_generation == 7
    assert (b.outcome, b.remaining) == ("ok", 0)
    assert (a2.outcome, a2.already) == ("limit", 1)
    assert (c.outcome, c.remaining) == ("sold_out", 0)
    assert await inventory.remaining(services, sid, inv) == 0


async def test_a_batch_for_a_missing_counter_answers_missing_and_takes_nothing(
    services: Services,
):
    sid, inv = new_id("ses"), new_id("lst")
    out = await asyncio.gather(*(ask(services, sid, inv, f"usr_{i}", "k", 1) for i in range(3)))
    assert [r.outcome for r in out] == ["missing"] * 3
    assert await inventory.remaining(services, sid, inv) is None


async def test_a_rebuild_keeps_its_lease_while_it_runs_and_a_dead_ones_lapses(
    services, monkeypatch
):
    monkeypatch.setattr(inventory, "REBUILD_LEASE_MS", 600)
    lock = services.keys("test", new_id("lock"))
    await services.redis.set(lock, b"mine", px=inventory.REBUILD_LEASE_MS)
    renewing = asyncio.create_task(inventory._renew(services, lock, "mine"))
    try:
        await asyncio.sleep(2 * inventory.REBUILD_LEASE_MS / 1000)
        assert await services.redis.exists(lock)  # renewed past its first lease
    finally:
        renewing.cancel()
    assert 0 < await services.redis.pttl(lock) <= inventory.REBUILD_LEASE_MS
    await asyncio.sleep(inventory.REBUILD_LEASE_MS / 1000 + 0.2)
    assert not await services.redis.exists(lock)  # nobody renews it: it lapses


async def test_a_lease_taken_over_is_not_renewed_by_its_former_holder(services, monkeypatch):
    monkeypatch.setattr(inventory, "REBUILD_LEASE_MS", 600)
    lock = services.keys("test", new_id("lock"))
    await services.redis.set(lock, b"theirs", px=5_000)  # another rebuilder's, since
    renewing = asyncio.create_task(inventory._renew(services, lock, "mine"))
    async with asyncio.timeout(2):
        await renewing  # it stops at its first renewal
    assert await services.redis.get(lock) == b"theirs"
    assert await services.redis.pttl(lock) > 3_000  # not shortened to our lease


async def test_a_counter_of_a_generation_the_database_moved_past_is_dropped_only_if_still_so(
    services,
):
    sid, inv = new_id("ses"), new_id("lst")
    key = services.keys.session(sid, "inv", inv)
    await services.redis.hset(key, mapping={"stock": 3, "gen": 6})
    assert not await inventory.drop_if_stale(
        services, session_id=sid, inventory_id=inv, generation=5
    )
    assert await services.redis.exists(key)  # rebuilt since: not ours to drop
    assert await inventory.drop_if_stale(services, session_id=sid, inventory_id=inv, generation=6)
    assert not await services.redis.exists(key)


async def test_giving_a_hold_back_forgets_its_key_only_while_the_key_names_that_order(services):
    sid, inv = new_id("ses"), new_id("lst")
    await services.redis.hset(
        services.keys.session(sid, "inv", inv), mapping={"stock": 1, "gen": 1}
    )
    first, second = new_id("ord"), new_id("ord")
    idem = services.keys.session(sid, "idem")
    field = inventory.idem_field("usr_a", "k")
    await services.redis.hset(idem, field, f"{second}|1|fp")  # the key names another order
    await inventory.release(
        services, session_id=sid, inventory_id=inv, order_id=first, forget_idempotency=field
    )
    assert await services.redis.hget(idem, field) == f"{second}|1|fp".encode()
    await inventory.release(
        services, session_id=sid, inventory_id=inv, order_id=second, forget_idempotency=field
    )
    assert await services.redis.hget(idem, field) is None


async def test_a_rebuild_names_the_holds_it_dropped_and_forgets_only_their_keys(services):
    sid, inv = new_id("ses"), new_id("lst")
    keys = [services.keys.session(sid, n, inv) for n in ("inv", "bought", "holds")]
    await inventory.run(services, inventory.REBUILD, keys, 1, 5)
    landed = await ask(services, sid, inv, "usr_a", "k-landed", 1)
    died = await ask(services, sid, inv, "usr_b", "k-died", 2)
    assert landed.outcome == died.outcome == "ok"
    holds = await services.redis.hgetall(keys[2])
    idem = services.keys.session(sid, "idem")
    named = {
        f.decode(): v.decode().split("|", 1)[0]
        for f, v in (await services.redis.hgetall(idem)).items()
    }
    landed_id = named[inventory.idem_field("usr_a", "k-landed")]
    died_id = named[inventory.idem_field("usr_b", "k-died")]
    assert set(holds) == {landed_id.encode(), died_id.encode()}
    # As `_recount` finds the database: only the landed order holds stock.
    dropped = await inventory.run(services, inventory.REBUILD, keys, 2, 4, landed_id, "usr_a", 1)
    assert [d.decode() for d in dropped] == [died_id]
    assert await inventory.run(services, inventory.REBUILD, keys, 2, 4) == []  # not newer
    # The dead one's key is forgotten; one that names another order by now is not.
    await services.redis.hset(
        idem, inventory.idem_field("usr_c", "k-retried"), f"{new_id('ord')}|2|fp"
    )
    assert await inventory.forget_keys_of(services, sid, {died_id}) == 1
    assert await services.redis.hget(idem, inventory.idem_field("usr_b", "k-died")) is None
    assert await services.redis.hget(idem, inventory.idem_field("usr_a", "k-landed")) is not None
    assert await services.redis.hlen(idem) == 2
