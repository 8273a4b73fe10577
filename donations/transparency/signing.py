"""The log's Ed25519 key and C2SP signed notes (signed-note.md, tlog-checkpoint.md).

A checkpoint body is `origin\\nsize\\nbase64(root)\\n`; its note appends a blank line and one
signature line `— <key name> base64(key id || signature)`. The key id is the first four bytes
of SHA-256(key name || 0x0A || 0x01 || public key), 0x01 being Ed25519's signature type, so
any C2SP note verifier (Go's golang.org/x/mod/sumdb/note, for one) accepts our checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# The log's origin line and the key's name: a schema-less URL-like name without spaces or
# '+', as C2SP asks. Changing it changes every key id, so it is fixed here, not configured.
ORIGIN = "panen.id/transparency-log"
ALG_ED25519 = 0x01
EM_DASH = "\u2014"


class SignatureError(ValueError):
    """A note's signature is missing, malformed, or not by the expected key."""


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


@dataclass(frozen=True)
class VerifierKey:
    """A public key as a note verifier knows it: its name and raw Ed25519 bytes."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The note verifier key string `<name>+<hex key id>+<base64(0x01 || key)>`."""
        raw = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    @classmethod
    def parse(cls, text: str, default_name: str = ORIGIN) -> VerifierKey:
        """Accept a vkey string, or the bare base64 of a 32-byte Ed25519 public key."""
        text = text.strip()
        parts = text.split("+", 2)
        if len(parts) == 3 and re.fullmatch(r"[0-9a-fA-F]{8}", parts[1]):
            name, hex_id, raw_b64 = parts
            raw = _b64(raw_b64, "public key")
            if len(raw) != 33 or raw[0] != ALG_ED25519:
                raise SignatureError("the verifier key is not an Ed25519 key")
            key = cls(name, raw[1:])
            if key.key_id.hex() != hex_id.lower():
                raise SignatureError("the verifier key's id does not match its name and key")
            return key
        raw = _b64(text, "public key")
        if len(raw) != 32:
            raise SignatureError("an Ed25519 public key is 32 bytes")
        return cls(default_name, raw)

    def verify_note(self, note: str) -> str:
        """Check the note carries a valid signature by this key; return the signed body."""
        body, sep, sigs = note.rpartition("\n\n")
        if not sep:
            raise SignatureError("the note has no signature block")
        body += "\n"
        pub = Ed25519PublicKey.from_public_bytes(self.public_key)
        for line in sigs.split("\n"):
            if not line:
                continue
            prefix = f"{EM_DASH} {self.name} "
            if not line.startswith(prefix):
                continue
            blob = _b64(line[len(prefix) :], "signature")
            if len(blob) != 4 + 64 or blob[:4] != self.key_id:
                continue
            try:
                pub.verify(blob[4:], body.encode())
            except InvalidSignature:
                raise SignatureError("the note's signature is not valid") from None
            return body
        raise SignatureError("the note carries no signature by this key")

    def verify_checkpoint(self, origin: str, size: int, root: bytes, signature: bytes) -> None:
        """Check `signature` (key id || Ed25519 signature) over the checkpoint's body."""
        if len(signature) != 4 + 64:
            raise SignatureError("a checkpoint signature is 68 bytes: key id and signature")
        if signature[:4] != self.key_id:
            raise SignatureError("the checkpoint was signed by another key")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature[4:], checkpoint_body(origin, size, root).encode()
            )
        except InvalidSignature:
            raise SignatureError("the checkpoint signature is not valid") from None


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"the {what} is not valid base64") from None


class SigningKey:
    """The log's private key, with the note name it signs under."""

    def __init__(self, private: Ed25519PrivateKey, name: str = ORIGIN) -> None:
        self._private = private
        self.name = name
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = VerifierKey(name, raw)

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    def sign_body(self, body: str) -> bytes:
        """key id || Ed25519 signature of the body, as a C2SP signature line carries it."""
        return self.key_id + self._private.sign(body.encode())

    def note(self, body: str) -> str:
        sig = base64.b64encode(self.sign_body(body)).decode()
        return f"{body}\n{EM_DASH} {self.name} {sig}\n"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())


_loaded: dict[Path, SigningKey] = {}
_lock = threading.Lock()


def load_or_create(path: Path) -> SigningKey:
    """The key in `path` (PKCS#8 PEM), created with mode 0600 on first start if missing.

    Several processes may start at once on a fresh machine: the file is created with
    O_EXCL, and whoever loses the race reads the winner's key.
    """
    path = Path(path)
    with _lock:
        if path in _loaded:
            return _loaded[path]
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # link() fails if another process got there first; theirs stays.
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        signing = SigningKey(private)
        _loaded[path] = signing
        return signing
