"""RFC 9162 §2.1 Merkle trees: hashing, proof shapes over stored subtrees, and verification.

Storage-free on purpose: the log (`donations.log`) stores the hash of every complete perfect
subtree as `(level, index)`, covering leaves `[index << level, (index + 1) << level)`. A proof
is planned here as a list of leaf ranges; each range is either one perfect subtree (one
stored row) or the right edge of the tree, which is the right fold of at most log2(n)
perfect subtrees. So a proof reads O(log n) rows and never rebuilds the tree.

The verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 step by step; they take no shortcut a
hostile proof could exploit and agree with the transparency-dev test vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]  # (level, index) of a perfect subtree
Range = tuple[int, int]  # leaves [start, end)


class ProofError(ValueError):
    """A proof does not prove what it claims."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n > 1), RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of_leaves(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes, by the RFC's recursive definition (reference, tests)."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(root_of_leaves(hashes[:k]), root_of_leaves(hashes[k:]))


# --- The compact range (the "peaks"): what an appender keeps to extend the tree. ----------


def peak_keys(size: int) -> list[NodeKey]:
    """The perfect subtrees that partition `[0, size)`, largest first."""
    return perfect_cover(0, size)


def root_from_peaks(peaks: Sequence[bytes]) -> bytes:
    """The tree root from its peaks, largest first: a right fold of node hashes."""
    if not peaks:
        return EMPTY_ROOT
    acc = peaks[-1]
    for h in reversed(peaks[:-1]):
        acc = node_hash(h, acc)
    return acc


def append_to_peaks(
    size: int, peaks: list[bytes], leaf: bytes
) -> tuple[list[bytes], list[tuple[NodeKey, bytes]]]:
    """Add leaf number `size`; returns the new peaks and every perfect subtree it completes
    (the leaf itself at level 0, then each parent it closes), to be stored."""
    new_nodes: list[tuple[NodeKey, bytes]] = [((0, size), leaf)]
    peaks = [*peaks, leaf]
    level, index = 0, size
    # Each trailing one-bit of `size` is a left sibling of the same level waiting for us.
    while index & 1:
        right = peaks.pop()
        left = peaks.pop()
        level, index = level + 1, index >> 1
        parent = node_hash(left, right)
        peaks.append(parent)
        new_nodes.append(((level, index), parent))
    return peaks, new_nodes


# --- Planning proofs as leaf ranges, and resolving ranges from stored perfect subtrees. ---


def perfect_cover(start: int, end: int) -> list[NodeKey]:
    """Split `[start, end)` into perfect subtrees, largest first.

    Every range a proof asks for starts at a multiple of a power of two at least as large as
    the range, so this is the binary decomposition of its length, and its right fold is the
    range's MTH exactly as RFC 9162 defines it.
    """
    out: list[NodeKey] = []
    while start < end:
        level = (end - start).bit_length() - 1
        while start & ((1 << level) - 1):
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]) as leaf ranges, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    out: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[Range]:
    """RFC 9162 §2.1.4.1 PROOF(first, D[0:second]) as leaf ranges, in proof order."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    out: list[Range] = []
    start, end, m, whole = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                out.append((start, end))
            break
        k = _split(n)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
            whole = False
    out.reverse()
    return out


def nodes_needed(ranges: Iterable[Range]) -> set[NodeKey]:
    need: set[NodeKey] = set()
    for start, end in ranges:
        need.update(perfect_cover(start, end))
    return need


def resolve(ranges: Sequence[Range], nodes: Mapping[NodeKey, bytes]) -> list[bytes]:
    """The MTH of each range, folded from the stored perfect subtrees it covers."""
    out: list[bytes] = []
    for start, end in ranges:
        cover = perfect_cover(start, end)
        try:
            out.append(root_from_peaks([nodes[key] for key in cover]))
        except KeyError as exc:
            raise LookupError(f"subtree {exc.args[0]} is not stored") from None
    return out


# --- Verification (RFC 9162 §2.1.3.2 and §2.1.4.2). ---------------------------------------


def _check_hashes(proof: Sequence[bytes]) -> None:
    if any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("a proof hash is not 32 bytes")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to; ProofError if the proof cannot be right."""
    if size <= 0 or not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError("the leaf hash is not 32 bytes")
    _check_hashes(proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError("the inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    if first < 0 or second < 0 or first > second:
        raise ProofError(f"tree size {first} cannot precede size {second}")
    # RFC 9162 defines consistency proofs for 0 < first only; an empty tree proves nothing.
    if first == 0:
        raise ProofError("consistency with the empty tree proves nothing")
    if first == second:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if first_root != second_root:
            raise ProofError("equal sizes with different roots")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    _check_hashes(proof)
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is deep")
    if fr != first_root:
        raise ProofError("the proof does not lead to the first root")
    if sr != second_root:
        raise ProofError("the proof does not lead to the second root")
