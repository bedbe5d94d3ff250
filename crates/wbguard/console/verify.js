// Checks audit entries in the browser, trusting nothing the server says beyond the bytes it hands over:
// the checkpoint's Ed25519 signature against the verifier key (C2SP signed note), and each entry's RFC 6962 /
// RFC 9162 inclusion proof against the checkpoint's root. SHA-256 and Ed25519 are the browser's own Web Crypto.
//
// The key itself comes from the node (`/v1/audit/key`); the first one seen is pinned in this browser's storage
// and any later change is reported, so a server that swapped its key is noticed. An auditor who holds the key
// from elsewhere (the witness, a printed copy) compares it with the fingerprint shown.

const enc = new TextEncoder();

function b64decode(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function b64encode(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/** RFC 6962 leaf hash: SHA-256(0x00 ‖ entry). */
export async function leafHash(entry) {
  return sha256(concat(new Uint8Array([0]), entry));
}

async function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or null when the proof cannot be for that index
 * and size. Sizes are JavaScript numbers: exact to 2^53 entries.
 */
export async function rootFromInclusion(index, size, leaf, proof) {
  if (!(index < size)) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}

/** Parses a verifier key `name+hash+base64(0x01 ‖ key)` and checks its hash. */
export async function parseVerifierKey(text) {
  // The key's base64 may itself hold '+': split at the first two only.
  const t = text.trim();
  const i = t.indexOf('+');
  const j = i < 0 ? -1 : t.indexOf('+', i + 1);
  if (i <= 0 || j < 0) throw new Error('the verifier key is not name+hash+key');
  const [name, hashHex, keyB64] = [t.slice(0, i), t.slice(i + 1, j), t.slice(j + 1)];
  const raw = b64decode(keyB64);
  if (raw.length !== 33 || raw[0] !== 1) throw new Error('the verifier key is not an Ed25519 key');
  const keyHash = (await sha256(concat(enc.encode(name + '\n'), raw))).slice(0, 4);
  if (hex(keyHash) !== hashHex) throw new Error('the verifier key hash does not match its key');
  return { name, keyHash, publicKey: raw.slice(1), text: text.trim() };
}

/**
 * Opens a C2SP signed note with `key`: returns its text once a signature line by the key's name and hash
 * verifies with Ed25519; throws otherwise.
 */
export async function openNote(note, key) {
  const split = note.indexOf('\n\n');
  if (split < 0) throw new Error('the checkpoint has no signatures');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2).split('\n').filter((l) => l !== '');
  const cryptoKey = await crypto.subtle.importKey('raw', key.publicKey, { name: 'Ed25519' }, false, ['verify']);
  for (const line of lines) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m || m[1] !== key.name) continue;
    const sig = b64decode(m[2]);
    if (sig.length !== 68 || !equal(sig.slice(0, 4), key.keyHash)) continue;
    const ok = await crypto.subtle.verify({ name: 'Ed25519' }, cryptoKey, sig.slice(4), enc.encode(text));
    if (!ok) throw new Error('the checkpoint signature does not verify');
    return text;
  }
  throw new Error('the checkpoint carries no signature by the verifier key');
}

/** Parses a tlog-checkpoint body: origin, size, root. */
export function parseCheckpoint(text) {
  const lines = text.split('\n');
  if (lines.length < 4 || !lines[0]) throw new Error('the checkpoint is malformed');
  if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error('the checkpoint size is not a number');
  const root = b64decode(lines[2]);
  if (root.length !== 32) throw new Error('the checkpoint root is not 32 bytes');
  return { origin: lines[0], size: Number(lines[1]), root };
}

const PIN = 'wbguard.verifier-key';

/**
 * The node's verifier key and latest checkpoint, the signature checked here. `pin` is `new` (first seen and
 * now pinned), `same`, or `changed` (the node's key is not the one pinned: nothing it signs is trusted).
 */
export async function loadTrust() {
  if (!globalThis.crypto || !crypto.subtle) {
    throw new Error('this page is not a secure context (HTTPS or localhost): the browser offers no Web Crypto');
  }
  const keyText = await (await fetch('/v1/audit/key', { credentials: 'same-origin' })).text();
  const key = await parseVerifierKey(keyText);
  let pin = 'same';
  const pinned = localStorage.getItem(PIN);
  if (pinned === null) {
    localStorage.setItem(PIN, key.text);
    pin = 'new';
  } else if (pinned !== key.text) {
    return { key, pin: 'changed', pinned };
  }
  const note = await (await fetch('/v1/audit/checkpoint', { credentials: 'same-origin' })).text();
  const text = await openNote(note, key);
  const cp = parseCheckpoint(text);
  return { key, pin, checkpoint: cp, fingerprint: hex(key.keyHash) };
}

/** Forgets the pinned key (after the auditor has checked a rotation out of band). */
export function unpin() {
  localStorage.removeItem(PIN);
}

/**
 * Verifies entry `seq` against `trust` (from loadTrust): its exact bytes, that they are the entry asked for,
 * and its inclusion proof up to the signed root. Returns `{status, entry}` with status `verified`, `pending`
 * (the entry is newer than the checkpoint; a checkpoint is signed every second) or `failed` with `why`.
 */
export async function verifyEntry(seq, trust) {
  const r = await fetch(`/v1/audit/entries/${seq}`, { credentials: 'same-origin' });
  if (!r.ok) return { status: 'failed', why: `the entry could not be fetched (HTTP ${r.status})` };
  const bytes = new Uint8Array(await r.arrayBuffer());
  let entry;
  try {
    entry = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return { status: 'failed', why: 'the entry is not JSON' };
  }
  if (entry.seq !== seq) return { status: 'failed', why: `the node answered entry ${entry.seq} for ${seq}`, entry };
  if (!trust.checkpoint) return { status: 'failed', why: 'no trusted checkpoint', entry };
  const size = trust.checkpoint.size;
  if (seq >= size) return { status: 'pending', why: `newer than the checkpoint (size ${size})`, entry };
  const pr = await fetch(`/v1/audit/proof/${seq}?size=${size}`, { credentials: 'same-origin' });
  if (!pr.ok) return { status: 'failed', why: `no inclusion proof (HTTP ${pr.status})`, entry };
  const proof = await pr.json();
  if (proof.size !== size || proof.from !== seq) return { status: 'failed', why: 'the proof is for another entry or size', entry };
  const root = await rootFromInclusion(seq, size, await leafHash(bytes), proof.proof.map(b64decode));
  if (root === null || !equal(root, trust.checkpoint.root)) {
    return { status: 'failed', why: 'the inclusion proof does not lead to the signed root', entry };
  }
  return { status: 'verified', entry, root: b64encode(root) };
}
