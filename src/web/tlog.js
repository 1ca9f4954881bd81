// Checks, in the browser, that a record is in Hallmark's public transparency log: the record's
// log entry is rebuilt from the record as shown (its canonical `hallmark-record-v2` or `-v3` encoding and
// its signature), hashed as an RFC 6962 leaf, carried up the c2sp.org/tlog-proof@v1 audit path
// to the checkpoint's root, and the checkpoint (a c2sp.org/signed-note) is checked with WebCrypto
// Ed25519 against the log's verifier key. Written from the specifications, apart from the Rust
// code in src/tlog/, so the page does not take the server's word for any of it. The key itself
// comes from the same server: a monitor pins it out of band (`hallmark log monitor`).

import { request, ApiError } from './api.js';

const encoder = new TextEncoder();

async function sha256(...parts) {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const data = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    data.set(part, at);
    at += part.length;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data));
}

function fromBase64(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new Error('bad base64');
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/i.test(text)) throw new Error('bad hex');
  return Uint8Array.from(text.match(/../g) || [], (h) => parseInt(h, 16));
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A length-prefixed field of the record encoding: u32 big-endian length, then the bytes. */
function field(bytes) {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

function i64(value) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt.asIntN(64, BigInt(value)));
  return out;
}

function i32(value) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, value);
  return out;
}

/** Microseconds since the Unix epoch of an RFC 3339 time with up to 9 fractional digits. */
function micros(text) {
  const match = /^(.*?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!match) throw new Error(`bad time ${text}`);
  const seconds = BigInt(Date.parse(`${match[1]}${match[3]}`) / 1000);
  const fraction = BigInt(((match[2] || '') + '000000').slice(0, 6));
  return seconds * 1000000n + fraction;
}

/**
 * The record's canonical bytes (the tables in src/provenance/record.rs): `hallmark-record-v2`,
 * or `hallmark-record-v3` for an edit (its upload's SHA-256 and the operation after the rest).
 */
export function canonicalRecord(record) {
  const v3 = record.encoding === 'hallmark-record-v3';
  if (!v3 && record.encoding !== 'hallmark-record-v2') throw new Error(`encoding ${record.encoding}`);
  const uuid = fromHex(record.id.replace(/-/g, ''));
  const parts = [
    encoder.encode(v3 ? 'hallmark-record-v3\0' : 'hallmark-record-v2\0'),
    field(uuid),
    field(i64(micros(record.created_at))),
    field(encoder.encode(record.model)),
    field(encoder.encode(record.model_version)),
    // The seed is shown as a u64 and signed as the same 64 bits; the perceptual hash likewise.
    field(i64(BigInt(String(record.seed)))),
    field(encoder.encode(record.format)),
    field(i32(record.width)),
    field(i32(record.height)),
    field(fromHex(record.file_sha256)),
    field(fromHex(record.pixel_sha256)),
    field(i64(BigInt(`0x${record.phash}`))),
    field(encoder.encode(record.manifest_id)),
    field(encoder.encode(record.signing_key_id)),
    field(record.api_key_commitment ? fromHex(record.api_key_commitment) : new Uint8Array()),
  ];
  if (v3) parts.push(field(fromHex(record.parent_sha256)), field(encoder.encode(record.operation)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** RFC 9162 §2.1.3.2: does `path` lead from `leaf` at `index` to `root` in a tree of `size`? */
export async function verifyInclusion(index, size, leaf, path, root) {
  if (index >= size) return false;
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  let r = leaf;
  for (const p of path) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equal(r, root);
}

/** A c2sp.org/tlog-proof@v1's index, audit path and checkpoint note. */
export function parseProof(text) {
  const split = text.indexOf('\n\n');
  if (split < 0) throw new Error('no checkpoint in the proof');
  const lines = text.slice(0, split).split('\n');
  if (lines.shift() !== 'c2sp.org/tlog-proof@v1') throw new Error('not a tlog-proof@v1');
  if (lines[0]?.startsWith('extra ')) lines.shift();
  const index = /^index (0|[1-9]\d*)$/.exec(lines.shift() || '');
  if (!index) throw new Error('no index line');
  return { index: Number(index[1]), path: lines.map(fromBase64), note: text.slice(split + 2) };
}

/** A C2SP verifier key `<name>+<key id hex>+<base64(0x01 ‖ public key)>`. */
export async function parseVerifierKey(text) {
  // The base64 key may itself hold '+': only the first two separate.
  const [name, id, ...rest] = text.trim().split('+');
  const key = rest.join('+');
  const raw = fromBase64(key || '');
  if (!name || raw.length !== 33 || raw[0] !== 1) throw new Error('not an Ed25519 verifier key');
  const keyHash = (await sha256(encoder.encode(`${name}\n`), raw)).slice(0, 4);
  if (!equal(keyHash, fromHex(id || ''))) throw new Error("the key id is not the key's");
  return { name, keyHash, publicKey: raw.slice(1), id };
}

/**
 * A checkpoint note checked against `vkey`: its origin, size and root once one signature line of
 * the key's name and id verifies over the note's text.
 */
export async function verifyCheckpoint(note, vkey) {
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new Error('not a signed note');
  const body = note.slice(0, split + 1);
  const signatures = note.slice(split + 2).split('\n').filter((line) => line);
  const key = await crypto.subtle.importKey('raw', vkey.publicKey, { name: 'Ed25519' }, false, ['verify']);
  let verified = false;
  for (const line of signatures) {
    const match = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!match || match[1] !== vkey.name) continue;
    const sig = fromBase64(match[2]);
    if (sig.length !== 68 || !equal(sig.slice(0, 4), vkey.keyHash)) continue;
    if (await crypto.subtle.verify({ name: 'Ed25519' }, key, sig.slice(4), encoder.encode(body))) {
      verified = true;
    }
  }
  if (!verified) throw new Error("no signature of the log's key verifies");
  const [origin, size, root] = body.split('\n');
  if (origin !== vkey.name || !/^(0|[1-9]\d*)$/.test(size)) throw new Error('not a checkpoint of this log');
  return {
    origin,
    size: Number(size),
    root: fromBase64(root),
    // Witness cosignatures (c2sp.org/tlog-cosignature) are other names' lines.
    cosigners: [...new Set(signatures.map((l) => l.split(' ')[1]).filter((n) => n && n !== vkey.name))],
  };
}

/**
 * Checks `proofText` (a c2sp.org/tlog-proof@v1) for `record` (as GET /v1/records/{id} shows it,
 * seed as a decimal string) against the verifier key `vkeyText`: `{state: 'included', index,
 * size, keyId, cosigners}` or `{state: 'invalid', reason}`.
 */
export async function checkProof(record, proofText, vkeyText) {
  try {
    const vkey = await parseVerifierKey(vkeyText);
    const proof = parseProof(proofText);
    const checkpoint = await verifyCheckpoint(proof.note, vkey);
    const entry = new Uint8Array([...canonicalRecord(record), ...fromHex(record.signature)]);
    const leaf = await sha256(Uint8Array.of(0), entry);
    if (!(await verifyInclusion(proof.index, checkpoint.size, leaf, proof.path, checkpoint.root))) {
      return { state: 'invalid', reason: 'the audit path does not lead from this record to the checkpoint' };
    }
    return {
      state: 'included',
      index: proof.index,
      size: checkpoint.size,
      keyId: `${vkey.name}+${vkey.id}`,
      cosigners: checkpoint.cosigners,
    };
  } catch (error) {
    return { state: 'invalid', reason: error.message };
  }
}

/**
 * Where record `id` stands in the log, checked here: what {@link checkProof} says, with `time`
 * (when the checkpoint was signed, from `Last-Modified`) when included; `{state: 'pending'}`;
 * or `{state: 'not_in_log'}`.
 */
export async function checkRecordInLog(id) {
  // The record as text, so that a seed past 2^53 (a client may choose one) is read exactly.
  const recordText = await request(`/v1/records/${encodeURIComponent(id)}`, { as: 'text' });
  const record = JSON.parse(recordText);
  record.seed = (/"seed":\s*(\d+)/.exec(recordText) || [])[1] ?? String(record.seed);
  let response;
  try {
    response = await fetch(`/v1/records/${encodeURIComponent(id)}/proof`, { credentials: 'omit', cache: 'no-store' });
  } catch (error) {
    throw new ApiError(0, 'network_error', error.message);
  }
  if (response.status === 202) return { state: 'pending' };
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    if (body.code === 'not_in_log') return { state: 'not_in_log' };
    throw new ApiError(response.status, body.code || `http_${response.status}`, body.message || 'no proof');
  }
  const modified = response.headers.get('Last-Modified');
  const result = await checkProof(record, await response.text(), await request('/log/key', { as: 'text' }));
  return { ...result, time: modified ? new Date(modified) : null };
}
