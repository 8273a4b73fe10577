// RFC 9162 §2.1 verification and C2SP signed-note checkpoints, in the browser, with WebCrypto.
// The same steps as donations/merkle.py and donations/signing.py, written out again so that
// a receipt can be checked without trusting any code the server runs.

export class ProofError extends Error {}

const enc = new TextEncoder();

export function hasWebCrypto() {
  return typeof crypto !== "undefined" && !!crypto.subtle;
}

export function b64decode(s) {
  if (typeof s !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4) throw new ProofError("not valid base64");
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function b64encode(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function leafHash(entryBytes) {
  return sha256(concat(new Uint8Array([0]), entryBytes));
}

export async function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

function checkHashes(proof) {
  for (const p of proof) if (p.length !== 32) throw new ProofError("a proof hash is not 32 bytes");
}

// RFC 9162 §2.1.3.2. Sizes are BigInt so trees past 2^32 leaves need no special care.
export async function rootFromInclusion(index, size, leaf, proof) {
  let fn = BigInt(index), sn = BigInt(size) - 1n;
  if (BigInt(size) <= 0n || fn < 0n || fn > sn) throw new ProofError(`index ${index} is not in a tree of size ${size}`);
  if (leaf.length !== 32) throw new ProofError("the leaf hash is not 32 bytes");
  checkHashes(proof);
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new ProofError("the proof is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while (!((fn & 1n) === 1n || fn === 0n)) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("the proof is shorter than the tree is deep");
  return r;
}

export async function verifyInclusion(index, size, leaf, proof, root) {
  const got = await rootFromInclusion(index, size, leaf, proof);
  if (!equal(got, root)) throw new ProofError("the inclusion proof does not lead to the checkpoint's root");
}

// RFC 9162 §2.1.4.2.
export async function verifyConsistency(first, second, proof, firstRoot, secondRoot) {
  let m = BigInt(first), n = BigInt(second);
  if (m <= 0n || m > n) throw new ProofError(`no consistency proof from ${first} to ${second}`);
  if (m === n) {
    if (proof.length) throw new ProofError("equal sizes need an empty proof");
    if (!equal(firstRoot, secondRoot)) throw new ProofError("equal sizes with different roots");
    return;
  }
  if (!proof.length) throw new ProofError("the consistency proof is empty");
  checkHashes(proof);
  const path = [...proof];
  if ((m & (m - 1n)) === 0n) path.unshift(firstRoot);
  let fn = m - 1n, sn = n - 1n;
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new ProofError("the proof is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if ((fn & 1n) === 0n) {
        while (!((fn & 1n) === 1n || fn === 0n)) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("the proof is shorter than the tree is deep");
  if (!equal(fr, firstRoot)) throw new ProofError("the proof does not lead to the receipt's root");
  if (!equal(sr, secondRoot)) throw new ProofError("the proof does not lead to the current root");
}

// --- C2SP signed notes (signed-note.md, tlog-checkpoint.md) ---------------------------------

export function checkpointBody(origin, size, rootB64) {
  return `${origin}\n${size}\n${rootB64}\n`;
}

export async function keyId(name, publicKey) {
  return (await sha256(concat(enc.encode(name), new Uint8Array([0x0a, 0x01]), publicKey))).slice(0, 4);
}

// A verifier key "<name>+<hex id>+<base64(0x01 || key)>", or the bare base64 of the key.
export async function parseVerifierKey(text, defaultName) {
  const s = String(text).trim();
  // "<name>+<hex id>+<base64>": the name has no "+", but the base64 may, so split twice only.
  const first = s.indexOf("+"), second = first < 0 ? -1 : s.indexOf("+", first + 1);
  if (second > 0 && /^[0-9a-fA-F]{8}$/.test(s.slice(first + 1, second))) {
    const name = s.slice(0, first), hexId = s.slice(first + 1, second);
    const raw = b64decode(s.slice(second + 1));
    if (raw.length !== 33 || raw[0] !== 0x01) throw new ProofError("the verifier key is not an Ed25519 key");
    const key = { name, publicKey: raw.slice(1) };
    if (hex(await keyId(name, key.publicKey)) !== hexId.toLowerCase()) {
      throw new ProofError("the verifier key's id does not match its name and key");
    }
    return key;
  }
  const raw = b64decode(s);
  if (raw.length !== 32) throw new ProofError("an Ed25519 public key is 32 bytes");
  return { name: defaultName, publicKey: raw };
}

export async function ed25519Verify(publicKey, signature, message) {
  let key;
  try {
    key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (err) {
    throw new ProofError(`this browser cannot check Ed25519 signatures (${err.name})`);
  }
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

// Check a checkpoint {origin, size, root_hash, signature} against a verifier key: the signed
// text is rebuilt from the fields, so a changed size or root breaks the signature.
export async function verifyCheckpoint(cp, vkey) {
  if (!cp || typeof cp.origin !== "string" || !Number.isInteger(cp.size) || cp.size < 0) {
    throw new ProofError("the checkpoint is malformed");
  }
  if (/[\n+]/.test(cp.origin) || cp.origin !== vkey.name) throw new ProofError(`the checkpoint's origin is not ${vkey.name}`);
  const root = b64decode(cp.root_hash);
  if (root.length !== 32) throw new ProofError("the checkpoint's root is not 32 bytes");
  const sig = b64decode(cp.signature);
  if (sig.length !== 68) throw new ProofError("a checkpoint signature is 68 bytes: key id and signature");
  if (!equal(sig.slice(0, 4), await keyId(vkey.name, vkey.publicKey))) throw new ProofError("the checkpoint was signed by another key");
  const body = enc.encode(checkpointBody(cp.origin, cp.size, cp.root_hash));
  if (!(await ed25519Verify(vkey.publicKey, sig.slice(4), body))) throw new ProofError("the checkpoint signature is not valid");
  if (typeof cp.note === "string") {
    // The note, if present, must say exactly what the fields say.
    const expected = `${checkpointBody(cp.origin, cp.size, cp.root_hash)}\n\u2014 ${vkey.name} ${cp.signature}\n`;
    if (cp.note !== expected) throw new ProofError("the checkpoint's note does not match its fields");
  }
  return root;
}
