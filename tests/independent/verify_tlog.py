#!/usr/bin/env python3
"""An independent check of Hallmark's transparency log, written from the specifications alone
(c2sp.org/tlog-tiles, tlog-checkpoint, signed-note and tlog-proof; RFC 6962 and RFC 9162 for the
Merkle tree), sharing no code with the service. Ed25519 comes from the `cryptography` package.

    verify_tlog.py BASE_URL VERIFIER_KEY [--old-checkpoint FILE] [--record ID ...]
                   [--witness WITNESS_KEY ...]

Downloads the checkpoint and checks its signature with the verifier key given (pinned, not the
one the log serves); downloads every hash tile and entry bundle the checkpoint's tree needs,
rebuilds the tree from the entries (leaf SHA-256(0x00 || entry), node SHA-256(0x01 || l || r))
and checks the tiles and the root; checks an older checkpoint is consistent with the new one
(its root is the root of the first entries, and an RFC 6962 consistency proof built from the
entries verifies by RFC 9162's algorithm); and for each record, fetches its tlog-proof, checks
it by RFC 9162's inclusion algorithm and that its entry is the public record's canonical
encoding followed by its signature (`verify_record.py`'s encoding); and that the checkpoint
carries a valid cosignature (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`) of each
`--witness` key. Prints OK and exits 0, or says what failed and exits 1.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_record import canonical  # noqa: E402


class Failed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failed(message)


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(entry):
    return sha256(b"\x00" + entry)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def largest_power_of_two_below(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves):
    """RFC 6962 2.1: the Merkle Tree Hash of a list of leaf hashes."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = largest_power_of_two_below(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def consistency_proof(m, leaves):
    """RFC 6962 2.1.2: PROOF(m, D[n])."""

    def subproof(m, leaves, complete):
        n = len(leaves)
        if m == n:
            return [] if complete else [mth(leaves)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return subproof(m, leaves[:k], complete) + [mth(leaves[k:])]
        return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]

    return subproof(m, leaves, True)


def verify_consistency(first, second, first_root, second_root, proof):
    """RFC 9162 2.1.4.2."""
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if first > second or not proof:
        return False
    if first & (first - 1) == 0:  # a power of two: the first root is the proof's start
        proof = [first_root] + proof
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


def verify_inclusion(index, size, leaf, path, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def parse_verifier_key(vkey):
    """c2sp.org/signed-note: name+hex(key id)+base64(0x01 || Ed25519 public key)."""
    name, key_id, key = vkey.split("+", 2)  # base64 may hold + too
    key = base64.b64decode(key, validate=True)
    check(key[0] == 1 and len(key) == 33, "not an Ed25519 verifier key")
    check(
        sha256(name.encode() + b"\n" + key)[:4].hex() == key_id,
        "the verifier key's id is not SHA-256(name || 0x0A || 0x01 || key)[:4]",
    )
    return name, bytes.fromhex(key_id), Ed25519PublicKey.from_public_bytes(key[1:])


def verify_note(note, vkey):
    """The checkpoint's (origin, size, root) once a signature by `vkey` verifies."""
    name, key_id, public = parse_verifier_key(vkey)
    check(note.endswith("\n"), "the note does not end with a newline")
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    verified = False
    for line in signatures[:-1].split("\n"):
        check(line.startswith("\u2014 "), f"signature line {line!r} does not start with an em dash")
        signer, _, b64 = line[2:].partition(" ")
        raw = base64.b64decode(b64, validate=True)
        if signer == name and raw[:4] == key_id:
            check(len(raw) == 68, "an Ed25519 signature line holds 4 + 64 bytes")
            try:
                public.verify(raw[4:], text.encode())
            except InvalidSignature:
                raise Failed("the checkpoint's signature does not verify")
            verified = True
    check(verified, "no signature by the pinned key")
    lines = text.split("\n")
    check(lines[0] == name, f"origin {lines[0]!r} is not the key name {name!r}")
    check(lines[1] == "0" or (lines[1].isdigit() and not lines[1].startswith("0")), "bad size line")
    root = base64.b64decode(lines[2], validate=True)
    check(len(root) == 32, "the root is not 32 bytes")
    return lines[0], int(lines[1]), root


def verify_cosignature(note, wkey):
    """The time of a valid cosignature/v1 by witness key `wkey` (name+hex(key id)+base64(0x04 ||
    Ed25519 public key)) on the checkpoint note."""
    name, key_id, key = wkey.split("+", 2)
    key = base64.b64decode(key, validate=True)
    check(key[0] == 4 and len(key) == 33, "not a cosignature/v1 witness key")
    check(
        sha256(name.encode() + b"\n" + key)[:4].hex() == key_id,
        "the witness key's id is not SHA-256(name || 0x0A || 0x04 || key)[:4]",
    )
    public = Ed25519PublicKey.from_public_bytes(key[1:])
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    for line in signatures[:-1].split("\n"):
        signer, _, b64 = line[2:].partition(" ")
        raw = base64.b64decode(b64, validate=True)
        if signer != name or raw[:4].hex() != key_id:
            continue
        check(len(raw) == 4 + 8 + 64, "a cosignature line holds 4 + 8 + 64 bytes")
        timestamp = int.from_bytes(raw[4:12], "big")
        message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
        try:
            public.verify(raw[12:], message)
        except InvalidSignature:
            raise Failed(f"the cosignature of {name} does not verify")
        return timestamp
    raise Failed(f"no cosignature of {name}")


# Straight to the log: never through a proxy the environment names.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url):
    try:
        with OPENER.open(url) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def tile_index(n):
    """tlog-tiles: N in 3-digit groups, all but the last prefixed x."""
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.insert(0, f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(groups)


def fetch_tile(base, kind, n, width):
    path = f"{base}/log/tile/{kind}/{tile_index(n)}" + ("" if width == 256 else f".p/{width}")
    status, headers, body = get(path)
    check(status == 200, f"{path}: HTTP {status}")
    check(headers["Content-Type"] == "application/octet-stream", f"{path}: content type")
    check("immutable" in headers.get("Cache-Control", ""), f"{path}: not immutable")
    return body


def parse_bundle(data):
    entries = []
    while data:
        check(len(data) >= 2, "truncated entry bundle")
        length = int.from_bytes(data[:2], "big")
        check(len(data) >= 2 + length, "truncated entry")
        entries.append(data[2 : 2 + length])
        data = data[2 + length :]
    return entries


def download_tree(base, size):
    """Every entry, from the entry bundles; the level-0 and level-1 tiles checked against them."""
    entries, leaves = [], []
    full, partial = divmod(size, 256)
    for n in range(full + (1 if partial else 0)):
        width = 256 if n < full else partial
        bundle = parse_bundle(fetch_tile(base, "entries", n, width))
        check(len(bundle) == width, f"entry bundle {n} has {len(bundle)} entries, not {width}")
        tile = fetch_tile(base, "0", n, width)
        check(len(tile) == 32 * width, f"tile 0/{n} is {len(tile)} bytes")
        for i, entry in enumerate(bundle):
            check(tile[32 * i : 32 * i + 32] == leaf_hash(entry), f"leaf {256 * n + i}")
        entries += bundle
        leaves += [leaf_hash(e) for e in bundle]
    # Level 1: each hash is the MTH of a full level-0 tile.
    if size >= 256:
        width = size // 256
        check(width < 256, "this checker stops at level 1")
        tile = fetch_tile(base, "1", 0, width)
        for i in range(width):
            check(tile[32 * i : 32 * i + 32] == mth(leaves[256 * i : 256 * i + 256]), f"tile 1 hash {i}")
    beyond = f"{base}/log/tile/entries/{tile_index(full)}.p/{partial + 1}"
    check(get(beyond)[0] == 404, "an entry bundle beyond the tree is served")
    return entries, leaves


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("vkey")
    parser.add_argument("--old-checkpoint")
    parser.add_argument("--record", action="append", default=[])
    parser.add_argument("--witness", action="append", default=[])
    args = parser.parse_args()
    base = args.base.rstrip("/")
    try:
        status, headers, body = get(f"{base}/log/checkpoint")
        check(status == 200, f"checkpoint: HTTP {status}")
        check(headers["Content-Type"] == "text/plain; charset=utf-8", "checkpoint content type")
        origin, size, root = verify_note(body.decode(), args.vkey)
        for wkey in args.witness:
            timestamp = verify_cosignature(body.decode(), wkey)
            print(f"checkpoint {size}: cosigned by {wkey.split('+')[0]} at {timestamp}")
        entries, leaves = download_tree(base, size)
        check(mth(leaves) == root, "the entries do not hash to the checkpoint's root")
        print(f"checkpoint {origin} {size}: signature and root OK")

        if args.old_checkpoint:
            with open(args.old_checkpoint) as f:
                _, old_size, old_root = verify_note(f.read(), args.vkey)
            check(old_size <= size, "the old checkpoint is larger")
            check(mth(leaves[:old_size]) == old_root, "the old root is not the root of the first entries")
            proof = consistency_proof(old_size, leaves) if 0 < old_size < size else []
            check(
                verify_consistency(old_size, size, old_root, root, proof),
                "the consistency proof does not verify",
            )
            print(f"checkpoint {old_size} -> {size}: consistent")

        for record_id in args.record:
            status, _, body = get(f"{base}/v1/records/{record_id}/proof")
            check(status == 200, f"proof of {record_id}: HTTP {status}")
            text = body.decode()
            head, _, note = text.partition("\n\n")
            lines = head.split("\n")
            check(lines[0] == "c2sp.org/tlog-proof@v1", "not a tlog-proof@v1")
            if lines[1].startswith("extra "):
                lines.pop(1)
            check(lines[1].startswith("index "), "no index line")
            index = int(lines[1][len("index "):])
            path = [base64.b64decode(line, validate=True) for line in lines[2:]]
            _, proof_size, proof_root = verify_note(note, args.vkey)
            check(
                verify_inclusion(index, proof_size, leaves[index], path, proof_root),
                f"the inclusion proof of {record_id} does not verify",
            )
            status, _, body = get(f"{base}/v1/records/{record_id}")
            check(status == 200, f"record {record_id}: HTTP {status}")
            record = json.loads(body)
            check(record["log_index"] == index, "the record view's log_index is not the proof's")
            want = canonical(record) + bytes.fromhex(record["signature"])
            check(entries[index] == want, f"entry {index} is not record {record_id}'s encoding and signature")
            print(f"record {record_id}: entry {index} included")
    except Failed as failure:
        print(f"FAILED: {failure}")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
