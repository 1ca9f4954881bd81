#!/usr/bin/env python3
"""Smoke test of the Python peer (no pytest): starts it on a free port with a database and data
directory of its own, generates images, and checks what a generation must leave behind.

    python benches/python_peer/test_peer.py   # with the venv's python; needs PostgreSQL

DATABASE_URL (default postgres://postgres@127.0.0.1:5432/hallmark) names the server; the test
uses the database hallmark_peer_smoke on it and drops it at the end. Exits 0 when every check
passes.
"""
import asyncio
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import app  # noqa: E402

import asyncpg  # noqa: E402
import c2pa  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def server_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hallmark")
    return base.split("?")[0].rpartition("/")[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, body=None, headers=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def check(condition, message):
    if not condition:
        raise AssertionError(message)
    print(f"ok: {message}")


async def check_row(db_url, record_id, signed: bytes, data_dir: Path, manifest_label: str):
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow("SELECT * FROM peer_records WHERE id = $1", record_id)
        check(row is not None, f"record {record_id} is in peer_records")
        check(bytes(row["file_sha256"]) == hashlib.sha256(signed).digest(),
              "its file_sha256 is the SHA-256 of the bytes served")
        check(row["manifest_id"] == manifest_label, "its manifest_id is the embedded manifest's label")
        check(row["encoding"] == 2 and row["api_key_id"] is not None, "encoding v2, made by an API key")
        key = await conn.fetchrow("SELECT public_key FROM peer_signing_keys WHERE id = $1",
                                  row["signing_key_id"])
        fields = {k: row[k] for k in ("id", "created_at", "model", "model_version", "seed", "format",
                                      "width", "height", "manifest_id", "signing_key_id", "api_key_id")}
        for k in ("file_sha256", "pixel_sha256"):
            fields[k] = bytes(row[k])
        fields["phash"] = row["phash"]
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        Ed25519PublicKey.from_public_bytes(bytes(key["public_key"])).verify(
            bytes(row["signature"]), app.canonical_bytes(fields))
        print("ok: the record's Ed25519 signature verifies over the canonical v2 encoding")
        hashes = await conn.fetch(
            "SELECT variant, phash FROM peer_record_hashes WHERE record_id = $1 ORDER BY variant", record_id)
        check(len(hashes) == 17 and hashes[0]["phash"] == row["phash"],
              "17 registered pHashes, the whole image's first")
        pixels = np.asarray(Image.open(io.BytesIO(signed)))
        check(app.pixel_sha256(pixels[..., None]) == bytes(row["pixel_sha256"]),
              "pixel_sha256 matches the decoded pixels")
        fp = app.Fingerprinter(32)
        check([app.i64(h) for h in fp.phashes(pixels)] == [h["phash"] for h in hashes],
              "the registered pHashes are the decoded image's")
        import hallmark_fingerprint as reference
        with tempfile.NamedTemporaryFile(suffix=".png") as f:
            f.write(signed)
            f.flush()
            packed = reference.fingerprint(f.name)
        check(app.i64(int.from_bytes(packed, "big")) == row["phash"],
              "the pHash equals scripts/hallmark_fingerprint.py's on the signed file")
        entry = await conn.fetchval("SELECT entry FROM peer_log_pending WHERE record_id = $1", record_id)
        check(bytes(entry) == app.canonical_bytes(fields) + bytes(row["signature"]),
              "the log entry is the canonical encoding then the signature")
        blobs = app.Blobs(data_dir / "blobs")
        check(blobs.path(bytes(row["file_sha256"])).read_bytes() == signed, "the blob on disk is the file served")
        check(blobs.path(bytes(row["manifest_sha256"])).exists(), "the manifest store is a blob too")
    finally:
        await conn.close()


def check_manifest(signed: bytes, record_id: str) -> str:
    reader = c2pa.Reader("image/png", io.BytesIO(signed))
    results = reader.get_validation_results() or {}
    active = results.get("activeManifest", {})
    codes = {item["code"] for item in active.get("success", [])}
    failures = {item["code"] for item in active.get("failure", [])}
    check("claimSignature.validated" in codes, "C2PA claim signature validated")
    check("assertion.dataHash.match" in codes, "C2PA data hash matches the file")
    check(failures <= {"signingCredential.untrusted"},
          f"no C2PA failure but the untrusted root (failures: {sorted(failures)})")
    manifest = reader.get_active_manifest()
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions"))["actions"]
    check(any(a["action"] == "c2pa.created" and a.get("digitalSourceType") == app.TRAINED_ALGORITHMIC_MEDIA
              for a in actions), "a c2pa.created action declares trainedAlgorithmicMedia")
    check(assertions[app.HALLMARK_ASSERTION]["record_id"] == record_id,
          "the org.hallmark.generation assertion names the record")
    check(assertions["c2pa.soft-binding"]["alg"] == app.SOFT_BINDING_ALG, "a soft-binding assertion")
    chain = manifest.get("signature_info", {})
    check(chain.get("alg") in ("Ed25519", "ed25519"), f"signed with Ed25519 ({chain.get('alg')})")
    label = json.loads(reader.json())["active_manifest"]
    reader.close()
    return label


def main() -> int:
    db_url = f"{server_url()}/hallmark_peer_smoke"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="peer-smoke-") as tmp:
        data = Path(tmp)
        key = subprocess.run([sys.executable, str(HERE / "app.py"), "init", "--database-url", db_url,
                              "--data-dir", str(data)], check=True, capture_output=True,
                             text=True).stdout.strip()
        check(key.startswith("hm_"), "init made the database, tables, PKI and a generator key")
        log = open(data / "serve.log", "w")
        server = subprocess.Popen([sys.executable, str(HERE / "app.py"), "serve", "--database-url", db_url,
                                   "--data-dir", str(data), "--port", str(port), "--torch-threads", "1"],
                                  stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            started = time.monotonic()
            while True:
                if server.poll() is not None:
                    raise AssertionError(f"the peer exited: {(data / 'serve.log').read_text()}")
                try:
                    if request(f"{base}/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() - started > 120:
                    raise AssertionError("the peer was not ready within 120 s")
                time.sleep(0.2)
            auth = {"Authorization": f"Bearer {key}"}
            status, _, _ = request(f"{base}/v1/generations", {"count": 1})
            check(status == 401, "no key: 401")
            status, _, _ = request(f"{base}/v1/generations", {"count": 1}, {"Authorization": "Bearer hm_00"})
            check(status == 401, "unknown key: 401")
            status, _, _ = request(f"{base}/v1/generations", {"count": 0}, auth)
            check(status == 400, "count 0: 400")

            status, headers, signed = request(f"{base}/v1/generations", {"count": 1, "seed": 42},
                                              {**auth, "Accept": "image/png"})
            check(status == 200 and signed.startswith(b"\x89PNG"), "Accept: image/png answers the signed PNG")
            headers = {name.lower(): value for name, value in headers.items()}
            record_id = headers["x-hallmark-record-id"]
            timing = headers["server-timing"]
            check(all(stage in timing for stage in ("inference", "encode", "fingerprint", "sign", "store")),
                  f"Server-Timing has every stage ({timing})")
            label = check_manifest(signed, record_id)
            asyncio.run(check_row(db_url, uuid.UUID(record_id), signed, data, label))

            status, _, body = request(f"{base}/v1/generations", {"count": 1, "format": "png"}, auth)
            answer = json.loads(body)
            check(status == 201 and set(answer) == {"model", "model_version", "seed", "images"},
                  "JSON answer: 201 {model, model_version, seed, images}")
            image = answer["images"][0]
            check({"id", "image_url", "record_url", "format", "width", "height", "sha256", "pixel_sha256",
                   "phash", "manifest_id", "created_at"} <= set(image), "each image as Hallmark lists it")
            status, _, fetched = request(base + image["image_url"], headers=auth)
            check(status == 200 and hashlib.sha256(fetched).hexdigest() == image["sha256"],
                  "image_url serves the file whose sha256 was answered")
            asyncio.run(check_row(db_url, uuid.UUID(image["id"]), fetched, data, image["manifest_id"]))
            status, _, body = request(f"{base}/v1/generations", {"count": 3, "seed": 7}, auth)
            check(status == 201 and len(json.loads(body)["images"]) == 3, "count 3: three images")
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()

    async def drop():
        conn = await asyncpg.connect(f"{server_url()}/postgres")
        try:
            await conn.execute('DROP DATABASE IF EXISTS "hallmark_peer_smoke" WITH (FORCE)')
        finally:
            await conn.close()
    asyncio.run(drop())
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
