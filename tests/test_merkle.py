"""RFC 9162 hashing, proof generation and verification, and C2SP signed notes (no database)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from donations.transparency import merkle
from donations.transparency.log import EntryError, canonical_json
from donations.transparency.signing import SignatureError, SigningKey, VerifierKey, checkpoint_body

# A copy of ../shared/testdata/merkle (transparency-dev/merkle's public RFC 9162 vectors;
# its README says where from), so the suite needs nothing outside the repository.
VECTORS = Path(__file__).resolve().parent / "vectors" / "merkle"
CASES = sorted(VECTORS.rglob("*.json"))

# The eight leaves of RFC 6962's test tree, from which the vectors' trees are built.
RFC6962_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]


def _b(text: str) -> bytes:
    return base64.b64decode(text)


def _verdict(case: dict[str, Any]) -> bool:
    """True when the verifier rejects the case."""
    proof = [_b(p) for p in case["proof"] or []]
    try:
        if "leafIdx" in case:
            merkle.verify_inclusion(
                case["leafIdx"], case["treeSize"], _b(case["leafHash"]), proof, _b(case["root"])
            )
        else:
            merkle.verify_consistency(
                case["size1"], case["size2"], proof, _b(case["root1"]), _b(case["root2"])
            )
    except merkle.ProofError:
        return True
    return False


def test_the_shared_vectors_are_present():
    assert len(CASES) > 150


@pytest.mark.parametrize("path", CASES, ids=[str(p.relative_to(VECTORS)) for p in CASES])
def test_verifier_reaches_the_verdict_every_vector_demands(path: Path):
    case = json.loads(path.read_text())
    assert _verdict(case) == case["wantErr"], case["desc"]


def _tree(leaves: list[bytes]) -> dict[merkle.NodeKey, bytes]:
    nodes: dict[merkle.NodeKey, bytes] = {}
    peaks: list[bytes] = []
    for i, leaf in enumerate(leaves):
        peaks, new = merkle.append_to_peaks(i, peaks, leaf)
        nodes.update(new)
    return nodes


def test_generated_proofs_equal_the_vectors_happy_paths():
    leaves = [merkle.leaf_hash(d) for d in RFC6962_LEAVES]
    nodes = _tree(leaves)
    checked = 0
    for path in CASES:
        if path.name != "happy-path.json":
            continue
        case = json.loads(path.read_text())
        want = [_b(p) for p in case["proof"] or []]
        if "leafIdx" in case:
            ranges = merkle.inclusion_ranges(case["leafIdx"], case["treeSize"])
            assert _b(case["root"]) == merkle.root_of_leaves(leaves[: case["treeSize"]])
        else:
            ranges = merkle.consistency_ranges(case["size1"], case["size2"])
        assert merkle.resolve(ranges, nodes) == want, path
        checked += 1
    assert checked >= 8


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300))
def test_generated_proofs_verify_for_every_index_and_every_earlier_size(n: int):
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    nodes = _tree(leaves)
    root = merkle.root_of_leaves(leaves)
    assert merkle.resolve([(0, n)], nodes) == [root]
    for i in range(n):
        proof = merkle.resolve(merkle.inclusion_ranges(i, n), nodes)
        assert len(proof) <= n.bit_length()
        merkle.verify_inclusion(i, n, leaves[i], proof, root)
    for m in range(1, n + 1):
        proof = merkle.resolve(merkle.consistency_ranges(m, n), nodes)
        merkle.verify_consistency(m, n, proof, merkle.root_of_leaves(leaves[:m]), root)


def test_a_proof_reads_a_logarithmic_number_of_stored_subtrees():
    for n in (10**4, 10**5, 10**6, 2**40 + 12345):
        worst = max(
            len(merkle.nodes_needed(merkle.inclusion_ranges(i, n)))
            for i in (0, 1, n // 3, n // 2, n - 2, n - 1)
        )
        assert worst <= 2 * n.bit_length()
        consistency = len(merkle.nodes_needed(merkle.consistency_ranges(n // 3, n)))
        assert consistency <= 3 * n.bit_length()


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=2, max_value=64), st.data())
def test_any_flipped_bit_or_wrong_index_breaks_an_inclusion_proof(n: int, data: st.DataObject):
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(n)]
    nodes = _tree(leaves)
    root = merkle.root_of_leaves(leaves)
    i = data.draw(st.integers(0, n - 1))
    proof = merkle.resolve(merkle.inclusion_ranges(i, n), nodes)
    j = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    bad = list(proof)
    bad[j] = bytes(b ^ (1 << (bit % 8)) if k == bit // 8 else b for k, b in enumerate(bad[j]))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(i, n, leaves[i], bad, root)
    other = data.draw(st.integers(0, n - 1).filter(lambda k: k != i))
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(other, n, leaves[i], proof, root)


def test_canonical_json_sorts_keys_at_every_depth_without_spaces_in_utf8():
    raw = canonical_json({"b": 1, "a": {"z": [1, {"y": 2, "x": "é"}], "c": None}, "kind": "k"})
    assert raw == '{"a":{"c":null,"z":[1,{"x":"é","y":2}]},"b":1,"kind":"k"}'.encode()


@pytest.mark.parametrize("value", [{"amount": 1.5}, {"a": [1, 2.0]}, {"a": {1: "x"}}, {"a": b"x"}])
def test_canonical_json_refuses_values_without_one_canonical_form(value: dict[str, Any]):
    with pytest.raises(EntryError):
        canonical_json(value)


# The example key and note of the Go reference (golang.org/x/mod/sumdb/note): Ed25519 is
# deterministic, so our signer must reproduce its signature line byte for byte.
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signed_notes_match_the_go_reference_byte_for_byte():
    key = SigningKey(Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED), name="PeterNeumann")
    assert key.verifier.vkey == GO_VKEY
    assert key.key_id.hex() == "c74f20a3"
    assert key.note(GO_TEXT) == GO_NOTE
    assert VerifierKey.parse(GO_VKEY).verify_note(GO_NOTE) == GO_TEXT


def test_a_checkpoint_signature_fails_for_another_tree_key_or_name():
    key = SigningKey.generate()
    root = merkle.leaf_hash(b"x")
    sig = key.sign_body(checkpoint_body(key.name, 5, root))
    key.verifier.verify_checkpoint(key.name, 5, root, sig)
    with pytest.raises(SignatureError):
        key.verifier.verify_checkpoint(key.name, 6, root, sig)
    with pytest.raises(SignatureError):
        key.verifier.verify_checkpoint(key.name, 5, merkle.leaf_hash(b"y"), sig)
    with pytest.raises(SignatureError):
        SigningKey.generate().verifier.verify_checkpoint(key.name, 5, root, sig)
    with pytest.raises(SignatureError):
        VerifierKey("another/name", key.verifier.public_key).verify_checkpoint(
            key.name, 5, root, sig
        )
    with pytest.raises(SignatureError):
        VerifierKey.parse(GO_VKEY).verify_note(GO_NOTE.replace("problem,", "problem;"))


def test_a_verifier_key_parses_from_vkey_or_bare_base64_and_checks_its_id():
    key = SigningKey.generate()
    assert VerifierKey.parse(key.verifier.vkey) == key.verifier
    bare = base64.b64encode(key.verifier.public_key).decode()
    assert VerifierKey.parse(bare, default_name=key.name) == key.verifier
    name, _, rest = key.verifier.vkey.partition("+")
    with pytest.raises(SignatureError):
        VerifierKey.parse(f"{name}+00000000+{rest.partition('+')[2]}")
