#!/usr/bin/env python3
"""An independent check of a Hallmark record, written from the documentation alone (the encoding
table in src/provenance/record.rs and RFC 8032), sharing no code with the service.

Reads a record as `GET /v1/records/{id}` answers it (JSON on stdin), rebuilds the canonical
encoding it names (`hallmark-record-v2`), and verifies the signature with the public key the
answer carries, in pure Python: Ed25519 (RFC 8032), or ECDSA (FIPS 186-5, SEC 1) on P-256 with
SHA-256 (`ES256`) or on P-384 with SHA-384 (`ES384`), the signature as r || s and the key as an
uncompressed point, as the answer's `signing_key.algorithm` says. With `--api-key-id UUID`, also checks that the record's
`api_key_commitment` commits to that key. Prints OK and exits 0, or says what failed and exits 1.
"""

import argparse
import hashlib
import json
import struct
import sys
import uuid
from datetime import datetime, timezone

# --- Ed25519 (RFC 8032, section 5.1) -----------------------------------------------------------
P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def inv(x):
    return pow(x, P - 2, P)


def add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def mul(k, point):
    result = (0, 1, 1, 0)
    while k:
        if k & 1:
            result = add(result, point)
        point = add(point, point)
        k >>= 1
    return result


def same(a, b):
    x1, y1, z1, _ = a
    x2, y2, z2, _ = b
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def decode_point(raw):
    if len(raw) != 32:
        return None
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x2 = (y * y - 1) * inv(D * y * y + 1) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


BASE_Y = 4 * inv(5) % P
BASE = decode_point(BASE_Y.to_bytes(32, "little"))


def ed25519_verify(public, message, signature):
    if len(signature) != 64:
        return False
    a, r = decode_point(public), decode_point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= Q:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % Q
    return same(mul(s, BASE), add(r, mul(h, a)))


# --- ECDSA on the NIST curves (FIPS 186-5 section 6.4.2; curve constants from SEC 2 v2) -------
CURVES = {
    "ES256": dict(
        p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
        n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        size=32,
        hash=hashlib.sha256,
    ),
    "ES384": dict(
        p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF,
        b=0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        gx=0xAA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7,
        gy=0x3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F,
        n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
        size=48,
        hash=hashlib.sha384,
    ),
}


def ec_add(c, a, b):
    """Affine addition on y^2 = x^3 - 3x + b; None is the point at infinity."""
    p = c["p"]
    if a is None:
        return b
    if b is None:
        return a
    (x1, y1), (x2, y2) = a, b
    if x1 == x2 and (y1 + y2) % p == 0:
        return None
    if a == b:
        slope = (3 * x1 * x1 - 3) * pow(2 * y1, -1, p) % p
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, p) % p
    x3 = (slope * slope - x1 - x2) % p
    return (x3, (slope * (x1 - x3) - y1) % p)


def ec_mul(c, k, point):
    result = None
    while k:
        if k & 1:
            result = ec_add(c, result, point)
        point = ec_add(c, point, point)
        k >>= 1
    return result


def ecdsa_verify(algorithm, public, message, signature):
    c = CURVES[algorithm]
    size, p, n = c["size"], c["p"], c["n"]
    if len(public) != 1 + 2 * size or public[0] != 4 or len(signature) != 2 * size:
        return False
    x, y = int.from_bytes(public[1 : 1 + size], "big"), int.from_bytes(public[1 + size :], "big")
    if x >= p or y >= p or (y * y - (x * x * x - 3 * x + c["b"])) % p:
        return False  # not on the curve
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    if not (0 < r < n and 0 < s < n):
        return False
    # The digest is as long as the order here, so it is taken whole.
    e = int.from_bytes(c["hash"](message).digest(), "big")
    w = pow(s, -1, n)
    point = ec_add(c, ec_mul(c, e * w % n, (c["gx"], c["gy"])), ec_mul(c, r * w % n, (x, y)))
    return point is not None and point[0] % n == r


def signature_valid(algorithm, public, message, signature):
    if algorithm == "Ed25519":
        return ed25519_verify(public, message, signature)
    if algorithm in CURVES:
        return ecdsa_verify(algorithm, public, message, signature)
    return False


# --- The record's canonical encoding, versions 2 and 3 -------------------------------------------------
def field(data):
    return struct.pack(">I", len(data)) + data


def micros(text):
    # RFC 3339 with up to microseconds, e.g. 2026-12-01T00:12:34.123456Z
    text = text.replace("Z", "+00:00")
    stamp = datetime.fromisoformat(text).astimezone(timezone.utc)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    delta = stamp - epoch
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def canonical(r):
    """Version 2 (a generation), or version 3 (an edit: version 2's fields under its own prefix,
    then the edited upload's SHA-256 and the operation)."""
    seed = r["seed"]
    if seed >= 2**63:  # shown as u64; signed as the same bits, i64
        seed -= 2**64
    phash = int(r["phash"], 16)
    if phash >= 2**63:
        phash -= 2**64
    commitment = bytes.fromhex(r["api_key_commitment"]) if r.get("api_key_commitment") else b""
    v3 = r["encoding"] == "hallmark-record-v3"
    out = b"hallmark-record-v3\0" if v3 else b"hallmark-record-v2\0"
    out += field(uuid.UUID(r["id"]).bytes)
    out += field(struct.pack(">q", micros(r["created_at"])))
    out += field(r["model"].encode())
    out += field(r["model_version"].encode())
    out += field(struct.pack(">q", seed))
    out += field(r["format"].encode())
    out += field(struct.pack(">i", r["width"]))
    out += field(struct.pack(">i", r["height"]))
    out += field(bytes.fromhex(r["file_sha256"]))
    out += field(bytes.fromhex(r["pixel_sha256"]))
    out += field(struct.pack(">q", phash))
    out += field(r["manifest_id"].encode())
    out += field(r["signing_key_id"].encode())
    out += field(commitment)
    if v3:
        out += field(bytes.fromhex(r["parent_sha256"]))
        out += field(r["operation"].encode())
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-key-id")
    args = parser.parse_args()
    record = json.load(sys.stdin)
    if record.get("encoding") not in ("hallmark-record-v2", "hallmark-record-v3"):
        print(f"FAIL: encoding {record.get('encoding')!r} is not hallmark-record-v2 or -v3")
        return 1
    public = bytes.fromhex(record["signing_key"]["public_key"])
    key_id = hashlib.sha256(public).digest()[:16].hex()
    if key_id != record["signing_key_id"]:
        print("FAIL: the public key is not the one signing_key_id names")
        return 1
    algorithm = record["signing_key"].get("algorithm", "Ed25519")
    if algorithm != "Ed25519" and algorithm not in CURVES:
        print(f"FAIL: unknown signing algorithm {algorithm!r}")
        return 1
    signature = bytes.fromhex(record["signature"])
    if not signature_valid(algorithm, public, canonical(record), signature):
        print(f"FAIL: the {algorithm} signature does not match the record")
        return 1
    if args.api_key_id:
        expected = hashlib.sha256(
            b"hallmark-key-commitment-v1\0"
            + uuid.UUID(record["id"]).bytes
            + uuid.UUID(args.api_key_id).bytes
        ).hexdigest()
        if record.get("api_key_commitment") != expected:
            print("FAIL: api_key_commitment does not commit to that key")
            return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
