"""The transparency log on real PostgreSQL: appends, checkpoints, the HTTP API, `panen verify`."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from commerce.outbox import service as outbox
from core.db import Database
from donations.charity import sequencer
from donations.charity.tasks import sequence_log
from donations.transparency import checkpoint, log, merkle, signing
from tests.conftest import process_env
from tests.processes import Server, Worker, running


def _b(s: str) -> bytes:
    return base64.b64decode(s)


@pytest.fixture(scope="module")
async def wide_db(settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, pool_size=8)
    yield database
    await database.close()


@pytest.fixture(scope="module")
def key(settings) -> signing.SigningKey:
    return signing.load_or_create(settings.signing_key_file)


async def _append(db: Database, n: int, tag: str) -> list[log.Appended]:
    out = []
    for i in range(n):
        async with db.transaction() as s:
            out.append(await log.append(s, "test", f"test:{tag}:{i}", {"i": i, "tag": tag}))
    return out


async def _all_entries(db: Database) -> list[Any]:
    async with db.reader() as s:
        size, _ = await log.head(s)
        return await log.entries(s, 0, size)


async def test_concurrent_appends_get_gap_free_indexes_and_one_tree(wide_db, key):
    tag = secrets.token_hex(3)
    results = await asyncio.gather(*(_append(wide_db, 15, f"{tag}-{w}") for w in range(8)))
    mine = [a.index for r in results for a in r]
    assert len(set(mine)) == len(mine) == 120

    rows = await _all_entries(wide_db)
    assert [r.idx for r in rows] == list(range(len(rows)))  # no gap, no duplicate, anywhere
    assert set(mine) <= {r.idx for r in rows}
    # Each stored leaf hash is the hash of the stored canonical entry …
    leaves = [merkle.leaf_hash(r.entry.encode()) for r in rows]
    assert leaves == [bytes(r.leaf_hash) for r in rows]
    # … and the signed root is the root of exactly the entries it covers: read them again
    # up to the signed size, since other tests may append between our read and the signing.
    signed = await checkpoint.publish(wide_db, key)
    assert signed.size >= len(rows)
    async with wide_db.reader() as s:
        covered = await log.entries(s, 0, signed.size)
    assert [r.idx for r in covered] == list(range(signed.size))
    covered_leaves = [merkle.leaf_hash(r.entry.encode()) for r in covered]
    assert covered_leaves[: len(leaves)] == leaves
    assert merkle.root_of_leaves(covered_leaves) == signed.root_hash
    key.verifier.verify_checkpoint(signed.origin, signed.size, signed.root_hash, signed.signature)


async def test_an_entry_rolls_back_with_its_transaction_and_leaves_no_gap(db):
    class Boom(Exception):
        pass

    async with db.reader() as s:
        before, root_before = await log.head(s)
    with pytest.raises(Boom):
        async with db.transaction() as s:
            await log.append(s, "test", f"test:rollback:{secrets.token_hex(4)}", {"x": 1})
            raise Boom
    async with db.reader() as s:
        assert await log.head(s) == (before, root_before)
    [nxt] = await _append(db, 1, f"after-rollback-{secrets.token_hex(3)}")
    assert nxt.index >= before
    rows = await _all_entries(db)
    assert [r.idx for r in rows] == list(range(len(rows)))


async def test_one_movement_is_logged_once(db):
    ref = f"test:once:{secrets.token_hex(4)}"
    async with db.transaction() as s:
        await log.append(s, "test", ref, {"x": 1})
    with pytest.raises(DBAPIError):
        async with db.transaction() as s:
            await log.append(s, "test", ref, {"x": 2})


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE tlog_entries SET entry = '{}' WHERE idx = 0",
        "DELETE FROM tlog_entries WHERE idx = 0",
        "UPDATE tlog_nodes SET hash = hash WHERE level = 0 AND idx = 0",
        "DELETE FROM tlog_checkpoints",
        "TRUNCATE tlog_entries",
        "UPDATE tlog_head SET size = 0, peaks = ''::bytea",
    ],
)
async def test_the_database_refuses_to_rewrite_or_shrink_the_log(db, statement):
    await _append(db, 1, f"guard-{secrets.token_hex(3)}")
    with pytest.raises(DBAPIError):
        async with db.transaction() as s:
            await s.execute(text(statement))


async def test_each_new_checkpoint_is_consistent_with_the_previous_one(db, key):
    sizes = []
    for n in (1, 3, 1, 7):
        await _append(db, n, f"ckpt-{secrets.token_hex(3)}")
        sizes.append(await checkpoint.publish(db, key))
    again = await checkpoint.publish(db, key)  # nothing new: the same checkpoint, not another
    assert again == sizes[-1]
    for old, new in itertools.pairwise(sizes):
        assert new.size > old.size
        async with db.reader() as s:
            proof = await log.consistency_proof(s, old.size, new.size)
            row = await checkpoint.at_size(s, new.size)
        assert row is not None
        merkle.verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)


async def test_a_second_key_can_never_sign_the_same_log(db, key):
    await _append(db, 1, f"key-{secrets.token_hex(3)}")
    await checkpoint.publish(db, key)
    await _append(db, 1, f"key-{secrets.token_hex(3)}")
    with pytest.raises(checkpoint.LogForkError):
        await checkpoint.publish(db, signing.SigningKey.generate())


async def test_the_signing_key_is_created_once_with_owner_only_permissions(tmp_path):
    path = tmp_path / "sub" / "key.pem"
    first = signing.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    signing._loaded.clear()  # a new process: the key is read back, not made again
    assert signing.load_or_create(path).verifier == first.verifier


# --- HTTP ---------------------------------------------------------------------------------


async def test_http_proofs_verify_against_the_signed_checkpoint(client, db, key):
    await _append(db, 5, f"http-{secrets.token_hex(3)}")
    await checkpoint.publish(db, key)
    first = (await client.get("/api/transparency/checkpoint")).json()
    await _append(db, 6, f"http-{secrets.token_hex(3)}")
    await checkpoint.publish(db, key)  # the cadence job's work, done here without waiting
    vkey = signing.VerifierKey.parse(
        (await client.get("/api/transparency/public-key")).json()["vkey"]
    )
    assert vkey == key.verifier
    ck = (await client.get("/api/transparency/checkpoint")).json()
    assert ck["size"] > first["size"]
    vkey.verify_checkpoint(ck["origin"], ck["size"], _b(ck["root_hash"]), _b(ck["signature"]))
    assert vkey.verify_note(ck["note"]).startswith(f"{ck['origin']}\n{ck['size']}\n")
    pk = (await client.get("/api/transparency/public-key")).json()
    assert pk["algorithm"] == "ed25519" and pk["key_id"] == ck["key_id"]

    size = ck["size"]
    entries: list[dict] = []
    while len(entries) < size:  # at most 1000 a page; the whole suite's log may be longer
        start = len(entries)
        url = f"/api/transparency/entries?start={start}&end={min(size, start + 1000)}"
        entries += (await client.get(url)).json()["entries"]
    assert [e["index"] for e in entries] == list(range(size))
    for e in entries[-8:] + entries[:2]:
        leaf = merkle.leaf_hash(e["entry"].encode())
        assert base64.b64encode(leaf).decode() == e["leaf_hash"]
        r = await client.get(f"/api/transparency/proof/inclusion?index={e['index']}&size={size}")
        assert r.status_code == 200, r.text
        proof = r.json()
        merkle.verify_inclusion(
            e["index"], size, leaf, [_b(h) for h in proof["hashes"]], _b(ck["root_hash"])
        )
    r = await client.get(f"/api/transparency/proof/consistency?first={first['size']}&second={size}")
    merkle.verify_consistency(
        first["size"],
        size,
        [_b(h) for h in r.json()["hashes"]],
        _b(first["root_hash"]),
        _b(ck["root_hash"]),
    )
    old = (await client.get(f"/api/transparency/checkpoint?size={first['size']}")).json()
    assert old == first


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/transparency/entries?start=-1", "start"),
        ("/api/transparency/entries?start=x", "start"),
        ("/api/transparency/entries?start=0&end=5000", "end"),
        ("/api/transparency/entries?start=5&end=2", "end"),
        ("/api/transparency/proof/inclusion?index=0", "size"),
        ("/api/transparency/proof/inclusion?index=5&size=5", "index"),
        ("/api/transparency/proof/inclusion?index=0&size=999999999", "size"),
        ("/api/transparency/proof/consistency?first=0&second=1", "first"),
        ("/api/transparency/proof/consistency?first=3&second=2", "first"),
        ("/api/transparency/proof/consistency?first=1&second=999999999", "second"),
    ],
)
async def test_bad_log_queries_are_400_naming_the_field(client, db, path, field):
    await _append(db, 6, f"bad-{secrets.token_hex(3)}")
    r = await client.get(path)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["field"] == field


async def test_an_unpublished_checkpoint_size_is_404(client):
    r = await client.get("/api/transparency/checkpoint?size=987654321")
    assert r.status_code == 404


# --- The cadence job, and `panen verify` against a real server ------------------------------


async def _panen_verify(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "panen", "verify", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _receipt(http: httpx.AsyncClient, index: int) -> dict[str, Any]:
    ck = (await http.get("/api/transparency/checkpoint")).json()
    page = (await http.get(f"/api/transparency/entries?start={index}&end={index + 1}")).json()
    [e] = page["entries"]
    proof = (
        await http.get(f"/api/transparency/proof/inclusion?index={index}&size={ck['size']}")
    ).json()
    return {
        "entry": e["entry"],
        "entry_index": index,
        "leaf_hash": e["leaf_hash"],
        "checkpoint": ck,
        "inclusion_proof": {k: proof[k] for k in ("index", "size", "hashes")},
        "log_url": str(http.base_url),
    }


async def test_the_worker_publishes_checkpoints_and_panen_verify_checks_a_receipt(
    settings, db, tmp_path: Path
):
    env = process_env(settings)
    server = Server(env)
    with running(server, Worker(env)):
        http = httpx.AsyncClient(base_url=server.base)
        early = await _append(db, 3, f"cli-{secrets.token_hex(3)}")
        deadline = time.monotonic() + 30
        ck: dict[str, Any] = {}
        while time.monotonic() < deadline:  # the job runs at the worker's start
            ck = (await http.get("/api/transparency/checkpoint")).json()
            if ck["size"] > early[-1].index:
                break
            await asyncio.sleep(0.3)
        assert ck["size"] > early[-1].index
        saved = tmp_path / "saved-checkpoint.json"
        saved.write_text(json.dumps(ck))

        later = await _append(db, 4, f"cli-{secrets.token_hex(3)}")
        await checkpoint.publish(db, signing.load_or_create(settings.signing_key_file))
        receipt = await _receipt(http, later[1].index)
        path = tmp_path / "receipt.json"
        path.write_text(json.dumps(receipt))
        vkey = (await http.get("/api/transparency/public-key")).json()["vkey"]
        await http.aclose()

        ok = await _panen_verify(
            str(path), "--public-key", vkey, "--checkpoint", str(saved), env=env
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "VERIFIED" in ok.stdout and "nothing was rewritten" in ok.stdout

        unpinned = await _panen_verify(str(path), env=env)  # no key chosen: it fails closed
        assert unpinned.returncode == 1 and "no trusted public key" in unpinned.stderr
        # A receipt that carries a key of its own (an attacker's) does not change that.
        signer = signing.SigningKey.generate()
        own = base64.b64encode(signer.verifier.public_key).decode()
        carrying = dict(receipt, public_key={"public_key": own})
        (tmp_path / "carrying.json").write_text(json.dumps(carrying))
        carried = await _panen_verify(str(tmp_path / "carrying.json"), env=env)
        assert carried.returncode == 1 and "VERIFIED" not in carried.stdout
        # Pinning: fetched once from the log and kept, then read from the file.
        pin = tmp_path / "log-key.json"
        first = await _panen_verify(str(path), "--pin", str(pin), "--server", server.base, env=env)
        assert first.returncode == 0 and "pinned in" in first.stdout, first.stdout + first.stderr
        assert pin.exists()
        again = await _panen_verify(str(path), "--pin", str(pin), env=env)
        assert again.returncode == 0 and "read from" in again.stdout

        forged = dict(receipt, entry=receipt["entry"].replace('"i":1', '"i":9'))
        (tmp_path / "forged.json").write_text(json.dumps(forged))
        bad = await _panen_verify(str(tmp_path / "forged.json"), "--public-key", vkey, env=env)
        assert bad.returncode == 1 and "leaf hash" in bad.stderr

        other = signing.SigningKey.generate().verifier.vkey
        wrong_key = await _panen_verify(str(path), "--public-key", other, env=env)
        assert wrong_key.returncode == 1 and "FAILED" in wrong_key.stderr

        moved = dict(receipt, entry_index=receipt["entry_index"] - 1)
        moved["inclusion_proof"] = dict(receipt["inclusion_proof"], index=moved["entry_index"])
        (tmp_path / "moved.json").write_text(json.dumps(moved))
        wrong_place = await _panen_verify(
            str(tmp_path / "moved.json"), "--public-key", vkey, env=env
        )
        assert wrong_place.returncode == 1 and "inclusion proof" in wrong_place.stderr


# --- The queue and its sequencer: charity movements commit without the log head ----------


async def _queue_and_commit(db: Database, entries: list[log.NewEntry]) -> None:
    async with db.transaction() as s:
        await log.queue(s, entries)


async def test_a_movement_commits_while_the_log_head_is_held_and_is_sequenced_after(wide_db, app):
    """The money transaction no longer waits for the head: it queues its entries and
    commits at once; the sequencer gives them indexes once the head is free."""
    tag = secrets.token_hex(3)
    source = log.NewEntry("test", f"test:{tag}:gift", {"amount": 100})
    match = log.NewEntry("test", f"test:{tag}:match", {"matches": log.IndexOf(source.ref)})
    async with wide_db.transaction() as holder:  # another transaction holds the head …
        await log.append(holder, "test", f"test:{tag}:holder", {"x": 1})
        # … and the movement commits meanwhile (it would wait here if it took the head)
        await asyncio.wait_for(_queue_and_commit(wide_db, [source, match]), timeout=5)
    got = await sequencer.sequence(app.state.services, [source.ref, match.ref])
    async with wide_db.reader() as s:
        holder_entry = await log.entry_by_ref(s, f"test:{tag}:holder")
        [gift, matched] = await log.entries(s, got[source.ref], got[source.ref] + 2)
    assert holder_entry is not None and got[source.ref] > holder_entry.idx
    assert got[match.ref] == got[source.ref] + 1
    assert (gift.ref, matched.ref) == (source.ref, match.ref)
    assert json.loads(matched.entry) == {"kind": "test", "matches": got[source.ref]}


async def test_sixteen_rooms_moving_money_at_once_leave_one_gap_free_log(wide_db, app, key):
    tag = secrets.token_hex(3)
    services = app.state.services

    async def room(r: int) -> dict[str, int]:
        got: dict[str, int] = {}
        for i in range(6):
            gift = log.NewEntry("test", f"test:{tag}:{r}:{i}", {"room": r, "i": i})
            match = log.NewEntry("test", f"{gift.ref}:m", {"matches": log.IndexOf(gift.ref)})
            await _queue_and_commit(wide_db, [gift, match])
            got |= await sequencer.sequence(services, [gift.ref, match.ref])
        return got

    rooms = await asyncio.gather(*(room(r) for r in range(16)))
    mine = {ref: i for got in rooms for ref, i in got.items()}
    assert len(mine) == len(set(mine.values())) == 16 * 6 * 2  # every entry, its own index
    rows = await _all_entries(wide_db)
    assert [r.idx for r in rows] == list(range(len(rows)))  # no gap, no duplicate
    by_index = {r.idx: r for r in rows}
    for ref, index in mine.items():
        assert by_index[index].ref == ref
        if ref.endswith(":m"):
            assert json.loads(by_index[index].entry)["matches"] == mine[ref[:-2]]
    async with wide_db.reader() as s:
        assert (await log.backlog(s))[0] == 0
    signed = await checkpoint.publish(wide_db, key)
    async with wide_db.reader() as s:
        covered = await log.entries(s, 0, signed.size)
    leaves = [merkle.leaf_hash(r.entry.encode()) for r in covered]
    assert merkle.root_of_leaves(leaves) == signed.root_hash


async def test_entries_a_crash_left_queued_are_logged_by_the_sweep_and_their_events_then_sent(
    wide_db, app
):
    """Committed, then the process died before sequencing: the events naming the entry
    wait in the outbox (nothing is sent without its index), the worker's sweep logs the
    entry, and the relay sends the events with the index filled in."""
    tag = secrets.token_hex(3)
    ref = f"test:{tag}:orphan"
    event = {"type": "donation", "donation_id": tag, "entry_index": None}
    async with wide_db.transaction() as s:
        await log.queue(s, [log.NewEntry("test", ref, {"x": 1})])
        await s.execute(
            text(
                "INSERT INTO outbox (events, xid, entry_of)"
                " VALUES (CAST(:e AS jsonb), pg_current_xact_id()::text::bigint, :r)"
            ),
            {"e": json.dumps([[f"test:{tag}", event], [f"test:{tag}", {"type": "x"}]]), "r": ref},
        )
    await outbox.relay(app.state.services)
    async with wide_db.reader() as s:
        held = (
            await s.execute(
                text("SELECT sent_at, events FROM outbox WHERE events @> CAST(:e AS jsonb)"),
                {"e": json.dumps([[f"test:{tag}", {"donation_id": tag}]])},
            )
        ).one()
        assert held.sent_at is None and await log.entry_by_ref(s, ref) is None
    await sequence_log({"services": app.state.services})
    await outbox.relay(app.state.services)
    async with wide_db.reader() as s:
        entry = await log.entry_by_ref(s, ref)
        sent = (
            await s.execute(
                text("SELECT sent_at, events FROM outbox WHERE events @> CAST(:e AS jsonb)"),
                {"e": json.dumps([[f"test:{tag}", {"donation_id": tag}]])},
            )
        ).one()
    assert entry is not None and sent.sent_at is not None
    assert sent.events == [
        [f"test:{tag}", {**event, "entry_index": entry.idx}],
        [f"test:{tag}", {"type": "x"}],  # an event without the field is left as it was
    ]


async def test_a_reversal_queued_before_its_source_is_sequenced_names_the_source(wide_db, app):
    tag = secrets.token_hex(3)
    source = log.NewEntry("test", f"test:{tag}:pledge", {"amount": 5})
    await _queue_and_commit(wide_db, [source])
    back = log.NewEntry("test", f"test:{tag}:reversal", {"reverses": log.IndexOf(source.ref)})
    await _queue_and_commit(wide_db, [back])
    got = await sequencer.sequence(app.state.services, [back.ref, source.ref])
    async with wide_db.reader() as s:
        [entry] = await log.entries(s, got[back.ref], got[back.ref] + 1)
    assert json.loads(entry.entry)["reverses"] == got[source.ref] < got[back.ref]


async def test_a_movement_already_in_the_log_cannot_be_queued_again(db):
    ref = f"test:again:{secrets.token_hex(4)}"
    async with db.transaction() as s:
        await log.append(s, "test", ref, {"x": 1})
    with pytest.raises(log.EntryError):
        async with db.transaction() as s:
            await log.queue(s, [log.NewEntry("test", ref, {"x": 2})])
    queued = log.NewEntry("test", f"{ref}:q", {"x": 3})
    await _queue_and_commit(db, [queued])
    with pytest.raises(DBAPIError):  # queued twice: the queue holds refs uniquely
        await _queue_and_commit(db, [queued])


async def test_a_pass_takes_what_it_can_and_the_sequencer_goes_on_until_the_queue_is_drained(
    wide_db, app
):
    tag = secrets.token_hex(3)
    refs = [f"test:{tag}:{i}" for i in range(5)]
    await _queue_and_commit(wide_db, [log.NewEntry("test", r, {"i": 1}) for r in refs])
    async with wide_db.transaction() as s:
        first = await log.integrate(s, limit=2)
    assert not first.drained and len(first.written) == 2  # more is queued behind it
    got = await sequencer.Sequencer(wide_db).sequence(refs)
    assert [got[r] for r in refs] == sorted(got.values())  # all of them, in queue order
    assert all(got[r] == i for r, i in first.written.items() if r in got)  # kept their index
