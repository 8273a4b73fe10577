"""Checking a receipt without trusting the server: leaf, inclusion, signature, consistency.

Everything here is offline and pure: given the receipt, the log's public key and (when the
donor kept one) an earlier checkpoint with the consistency proof between the two, it says
whether the receipt's entry is in the tree the log signed, and that the log never rewrote
the history the earlier checkpoint saw.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from donations.transparency import merkle
from donations.transparency.log import EntryError, canonical_json
from donations.transparency.signing import SignatureError, VerifierKey


class VerificationError(ValueError):
    """The receipt does not prove what it claims; the message says which step failed."""


@dataclass
class Verdict:
    checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def ok(self, text: str) -> None:
        self.checks.append(text)


def _get(obj: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = obj.get(name) if isinstance(obj, Mapping) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise VerificationError(f"{where}.{name} is missing or not a {kind.__name__}")
    return value


def _b64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise VerificationError(f"{where} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{where} is not valid base64") from None


@dataclass(frozen=True)
class CheckpointView:
    origin: str
    size: int
    root: bytes
    signature: bytes
    note: str | None

    @classmethod
    def parse(cls, obj: Any, where: str = "checkpoint") -> CheckpointView:
        if not isinstance(obj, Mapping):
            raise VerificationError(f"{where} is not an object")
        size = _get(obj, "size", int, where)
        if size < 0:
            raise VerificationError(f"{where}.size is negative")
        note = obj.get("note")
        return cls(
            origin=_get(obj, "origin", str, where),
            size=size,
            root=_b64(obj.get("root_hash"), f"{where}.root_hash"),
            signature=_b64(obj.get("signature"), f"{where}.signature"),
            note=note if isinstance(note, str) else None,
        )

    def check_signature(self, key: VerifierKey, where: str) -> None:
        try:
            key.verify_checkpoint(self.origin, self.size, self.root, self.signature)
            if self.note is not None:
                body = key.verify_note(self.note)
                if body != f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n":
                    raise VerificationError(f"{where}.note signs a different tree")
        except SignatureError as exc:
            raise VerificationError(f"{where}: {exc}") from None


def commitment(salt: str, donor_id: str) -> str:
    """The donor commitment an entry carries: hex SHA-256(salt || donor id), as UTF-8 text."""
    return hashlib.sha256((salt + donor_id).encode()).hexdigest()


def check_consistency(
    older: CheckpointView, newer: CheckpointView, proof: Sequence[bytes] | None
) -> None:
    if older.origin != newer.origin:
        raise VerificationError("the two checkpoints are of different logs")
    if older.size > newer.size:
        older, newer = newer, older
    if older.size == 0:
        return  # every tree extends the empty one
    try:
        merkle.verify_consistency(older.size, newer.size, proof or [], older.root, newer.root)
    except merkle.ProofError as exc:
        raise VerificationError(
            f"the log's tree at {newer.size} does not extend the one at {older.size}: {exc}"
        ) from None


def verify_receipt(
    receipt: Any,
    public_key: VerifierKey | None = None,
    earlier: Any = None,
    consistency_proof: Sequence[bytes] | None = None,
) -> Verdict:
    """Check a receipt; raises VerificationError at the first step that fails."""
    verdict = Verdict()
    if not isinstance(receipt, Mapping):
        raise VerificationError("the receipt is not a JSON object")

    entry_text = _get(receipt, "entry", str, "receipt")
    entry_bytes = entry_text.encode()
    leaf = merkle.leaf_hash(entry_bytes)
    if leaf != _b64(receipt.get("leaf_hash"), "receipt.leaf_hash"):
        raise VerificationError("the leaf hash is not SHA-256(0x00 || entry)")
    verdict.ok(f"leaf hash {leaf.hex()[:16]}… is the hash of the entry")
    try:
        entry = orjson.loads(entry_bytes)
        if not isinstance(entry, dict) or canonical_json(entry) != entry_bytes:
            raise VerificationError("the entry is not canonical JSON")
    except (orjson.JSONDecodeError, EntryError):
        raise VerificationError("the entry is not canonical JSON") from None

    subject = receipt.get("donation") or receipt.get("order")
    if isinstance(subject, Mapping):
        for name in ("amount", "currency", "charity_id", "session_id"):
            if name in entry and name in subject and entry[name] != subject[name]:
                raise VerificationError(f"the entry's {name} differs from the receipt's")
        ref = entry.get("donation_id", entry.get("order_id"))
        if ref is not None and subject.get("id") not in (None, ref):
            raise VerificationError("the entry is about another donation or order")
        verdict.ok("the entry records this receipt's gift: amount, currency, charity, session")
    donor = receipt.get("donor")
    if isinstance(donor, Mapping) and "donor" in entry:
        salt = _get(donor, "salt", str, "receipt.donor")
        if commitment(salt, _get(donor, "id", str, "receipt.donor")) != entry["donor"]:
            raise VerificationError("the entry's donor commitment is not of this donor")
        verdict.ok("the entry's donor commitment opens to you with your salt")

    ckpt = CheckpointView.parse(receipt.get("checkpoint"))
    key = public_key
    if key is None:
        embedded = receipt.get("public_key")
        if not isinstance(embedded, Mapping):
            raise VerificationError("no public key: pass the log's key")
        key = VerifierKey(ckpt.origin, _b64(embedded.get("public_key"), "receipt.public_key"))
        verdict.warnings.append(
            "the signature was checked against the key inside the receipt; pin the log's key "
            "with --public-key to rule out a receipt forged whole"
        )
    ckpt.check_signature(key, "checkpoint")
    verdict.ok(f"checkpoint of size {ckpt.size} is signed by key {key.key_id.hex()}")

    index = _get(receipt, "entry_index", int, "receipt")
    proof = receipt.get("inclusion_proof")
    if not isinstance(proof, Mapping):
        raise VerificationError("receipt.inclusion_proof is not an object")
    if _get(proof, "index", int, "inclusion_proof") != index:
        raise VerificationError("the inclusion proof is for another entry")
    if _get(proof, "size", int, "inclusion_proof") != ckpt.size:
        raise VerificationError("the inclusion proof is for another tree size")
    hashes = _get(proof, "hashes", list, "inclusion_proof")
    path = [_b64(h, f"inclusion_proof.hashes[{i}]") for i, h in enumerate(hashes)]
    try:
        merkle.verify_inclusion(index, ckpt.size, leaf, path, ckpt.root)
    except merkle.ProofError as exc:
        raise VerificationError(f"the inclusion proof fails: {exc}") from None
    verdict.ok(f"entry {index} is in the signed tree of size {ckpt.size}")

    if earlier is not None:
        old = CheckpointView.parse(earlier, "earlier checkpoint")
        old.check_signature(key, "earlier checkpoint")
        check_consistency(old, ckpt, consistency_proof)
        verdict.ok(
            f"the log at {max(old.size, ckpt.size)} extends your checkpoint at "
            f"{min(old.size, ckpt.size)}: nothing was rewritten"
        )
    return verdict


def _load_json(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as f:
            return orjson.loads(f.read())
    except OSError as exc:
        raise VerificationError(f"cannot read the {what} {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError:
        raise VerificationError(f"the {what} {path} is not JSON") from None


def _load_key(text: str, origin: str) -> VerifierKey:
    """A key given inline (vkey or base64), or a file holding one, or a /public-key answer."""
    try:
        with open(text, "rb") as f:
            text = f.read().decode().strip()
    except OSError:
        pass
    if text.startswith("{"):
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise VerificationError("the public key file is not valid JSON") from None
        text = str(obj.get("vkey") or obj.get("public_key") or "")
    try:
        return VerifierKey.parse(text, default_name=origin)
    except SignatureError as exc:
        raise VerificationError(f"the public key: {exc}") from None


def _fetch_consistency(server: str, first: int, second: int) -> list[bytes]:
    """Fetch a proof from the log; it need not be trusted, since it is verified here."""
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"first": first, "second": second})
    url = f"{server.rstrip('/')}/api/transparency/proof/consistency?{query}"
    if not url.startswith(("http://", "https://")):
        raise VerificationError("the log's address must be an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:  # noqa: S310 (checked above)
            body = orjson.loads(resp.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise VerificationError(f"cannot fetch the consistency proof from {url}: {exc}") from None
    hashes = body.get("hashes") if isinstance(body, dict) else None
    if not isinstance(hashes, list):
        raise VerificationError("the log answered without a consistency proof")
    return [_b64(h, "consistency proof hash") for h in hashes]


def _fetch_key(server: str) -> str:
    """The log's public key as its /public-key answers it (JSON text)."""
    import urllib.request

    url = f"{server.rstrip('/')}/api/transparency/public-key"
    if not url.startswith(("http://", "https://")):
        raise VerificationError("the log's address must be an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:  # noqa: S310 (checked above)
            return str(resp.read().decode())
    except OSError as exc:
        raise VerificationError(f"cannot fetch the log's public key from {url}: {exc}") from None


def trusted_key(
    public_key: str | None, pin: str | None, server: str | None, origin: str
) -> tuple[VerifierKey, list[str]]:
    """The key a receipt must be signed with, chosen by the person checking it: given
    (`--public-key`), or pinned in a file (`--pin FILE`: read if it exists, else fetched
    once from `--server` and kept there). A receipt's own key proves nothing: whoever made
    the receipt chose it."""
    if public_key:
        return _load_key(public_key, origin), []
    if pin:
        path = Path(pin)
        if path.exists():
            return _load_key(str(path), origin), [f"pinned key read from {pin}"]
        if not server:
            raise VerificationError(
                f"{pin} does not exist yet: pass --server to fetch the log's key once"
            )
        text = _fetch_key(server)
        key = _load_key(text, origin)
        path.write_text(text)
        return key, [f"the log's key was fetched from {server} and pinned in {pin}"]
    raise VerificationError(
        "no trusted public key: pass --public-key, or --pin FILE (with --server the first"
        " time) to fetch the log's key once and keep it"
    )


def verify_files(
    receipt_path: str,
    checkpoint_path: str | None = None,
    public_key: str | None = None,
    server: str | None = None,
    pin: str | None = None,
) -> tuple[int, list[str]]:
    """`panen verify`: exit status and the lines to print. Without a trusted key it fails:
    a receipt checked against the key it carries itself proves nothing."""
    notes: list[str] = []
    try:
        receipt = _load_json(receipt_path, "receipt")
        ckpt = receipt.get("checkpoint") if isinstance(receipt, dict) else None
        origin = ckpt.get("origin") if isinstance(ckpt, dict) else None
        key, notes = trusted_key(public_key, pin, server, str(origin or ""))
        earlier = proof = None
        if checkpoint_path:
            earlier = _load_json(checkpoint_path, "checkpoint")
            old = CheckpointView.parse(earlier, "earlier checkpoint")
            new = CheckpointView.parse(ckpt)
            lo, hi = sorted((old.size, new.size))
            if 0 < lo < hi:
                log_url = server or (receipt.get("log_url") if isinstance(receipt, dict) else None)
                if not isinstance(log_url, str):
                    raise VerificationError(
                        "checking consistency needs the log's address: pass --server"
                    )
                proof = _fetch_consistency(log_url, lo, hi)
        verdict = verify_receipt(receipt, key, earlier, proof)
    except VerificationError as exc:
        return 1, [f"FAILED: {exc}"]
    lines = [f"note: {n}" for n in notes] + [f"ok: {c}" for c in verdict.checks]
    lines += [f"warning: {w}" for w in verdict.warnings]
    lines.append("VERIFIED")
    return 0, lines
