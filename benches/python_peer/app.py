#!/usr/bin/env python3
"""Hallmark's Python peer: the work of Hallmark's `POST /v1/generations`, written as a good Python
team would write it, for issue 15's "at least 3x a Python service doing the same work".

README
======

What it does per request (as Hallmark does, see src/generation/mod.rs, src/api/generations.rs):

1. Authenticates `Authorization: Bearer hm_...` by one indexed query on the SHA-256 of the key
   (`peer_api_keys`, as Hallmark's `api_keys`), and validates the body (count 1..64, png/jpeg,
   quality only for JPEG, the served model's name).
2. Samples each image's latent from (seed, index) (numpy Philox keyed by both: like Hallmark's
   ChaCha8 stream, independent of batching; the same distribution, not the same numbers) and
   hands it to the model thread, which merges concurrent requests into one forward pass (up to
   256 images, waiting at most 2 ms for company: Hallmark's `limits.max_batch` and
   `limits.batch_delay_ms`). The generator is Hallmark's shipped `models/<name>/generator.safetensors`
   loaded into the PyTorch twin of the architecture from `benches/gan_torch.py` with
   `load_state_dict(strict=True)` (names mapped from Hallmark's `up{i}/bn{i}/out`).
3. On a thread pool (Hallmark: tokio's blocking pool), per image: PNG (or JPEG) encoding with
   Pillow; the fingerprints Hallmark registers: SHA-256 of the RGBA pixels (domain-separated),
   the 64-bit DCT pHash of the whole image and of the 4x4 grid of 26-pixel windows (17 hashes;
   numpy version of `scripts/hallmark_fingerprint.py`, checked against it at start-up); a C2PA
   manifest (c2pa-python `Builder`, Ed25519 signer from the PEM chain and key, no thumbnail, no
   verify-after-sign: Hallmark's settings) with the `c2pa.created` / `trainedAlgorithmicMedia`
   action, Hallmark's `org.hallmark.generation` assertion and the `c2pa.soft-binding` assertion;
   the SHA-256 of the signed file; the record's Ed25519 signature (`cryptography`) over Hallmark's
   canonical v2 encoding (src/provenance/record.rs), and the transparency-log entry (canonical
   bytes then signature).
4. Writes the signed file and its manifest store as content-addressed blobs
   (`<data>/blobs/sha256/ab/cd/<hex>`: temporary file, fsync, rename, fsync of the directory,
   the two concurrently), then, in one transaction on an asyncpg pool of 10 connections, the
   record, its 17 hashes and its log entry (`peer_records`, `peer_record_hashes`,
   `peer_log_pending`: Hallmark's columns, indexes, generated columns and NOTIFY trigger).
5. Answers like Hallmark: 201 JSON `{model, model_version, seed, images: [{id, image_url, ...}]}`,
   or with `Accept: image/png` and count 1, 200 and the signed bytes; `Server-Timing` with the
   same stages (inference, encode, fingerprint, sign, store).

Not done (Hallmark does it in the background): integrating the log entries into a Merkle tree
and signing checkpoints, and the in-memory near-duplicate index fed by the NOTIFY.

Run (the venv has torch and c2pa-python; `pip install -r benches/python_peer/requirements.txt`):

    python benches/python_peer/app.py init --database-url postgres://postgres@127.0.0.1:5432/hallmark_peer_bench \
        --data-dir /tmp/peer-data          # creates the database, tables and PKI; prints an API key
    python benches/python_peer/app.py serve --database-url ... --data-dir /tmp/peer-data --port 8090 \
        [--workers 1] [--torch-threads N]

`--workers N` runs N uvicorn processes (each with its own model thread and pool); the torch
intra-op thread count is `--torch-threads`, else torch's default (OMP_NUM_THREADS when set).
Environment knobs: PEER_IMAGE_THREADS (CPU pool, default cores + 4), PEER_IO_THREADS (blob
writes, default 64), PEER_POOL_SIZE (10, Hallmark's `database.max_connections`),
PEER_MAX_BATCH (256), PEER_BATCH_DELAY_MS (2), PEER_JIT=1 (TorchScript forward; no measurable
difference on the 2-core machine, so off by default).

Choices made so as not to be a strawman: uvloop + httptools; the model batches across requests
on its own thread; CPU work off the event loop; fsyncs on a pool of their own; asyncpg with
prepared statements, multi-row UNNEST inserts, TLS as the URL says (sslmode; default prefer, as
Hallmark's sqlx) and no per-release session reset (sqlx does none); one worker process per core is measured too.
Smoke test: `python benches/python_peer/test_peer.py`. Load: `benches/load.py`.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import io
import json
import os
import queue
import secrets
import struct
import sys
import threading
import time
import tomllib
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # benches/: gan_torch.py
sys.path.insert(0, str(REPO / "scripts"))  # hallmark_fingerprint.py

import numpy as np  # noqa: E402

VERSION = "0.1.0"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
HALLMARK_ASSERTION = "org.hallmark.generation"
SOFT_BINDING_ALG = "org.hallmark.fingerprint.1"
C2PA_CLAIM_SIGNING_EKU = "1.3.6.1.4.1.62558.2.1"
RECORD_DOMAIN_V2 = b"hallmark-record-v2\0"
KEY_COMMITMENT_DOMAIN = b"hallmark-key-commitment-v1\0"
PIXEL_HASH_DOMAIN = b"hallmark-pixels-v1\0"
MAX_COUNT = 64
RANDOM_SEED_BITS = (1 << 53) - 1


# ---------------------------------------------------------------------------------------------
# Settings (environment, so that uvicorn's worker processes inherit them)
# ---------------------------------------------------------------------------------------------

def env(name: str, default: str) -> str:
    return os.environ.get(f"PEER_{name}", default)


def database_url() -> str:
    return env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/hallmark_peer_bench")


def ssl_option(url: str):
    """TLS to PostgreSQL as the URL says (`sslmode=...`), else asyncpg's default, `prefer`: the
    same rule as Hallmark's sqlx (built with rustls), so both sides encrypt, or not, alike."""
    return None


# ---------------------------------------------------------------------------------------------
# Schema (Hallmark's migrations, tables prefixed peer_)
# ---------------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_api_keys (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('generator', 'moderator', 'admin')),
    prefix TEXT NOT NULL,
    key_hash BYTEA NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS peer_signing_keys (
    id TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
    cert_chain_pem TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS peer_records (
    id UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    seed BIGINT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('png', 'jpeg', 'webp')),
    width INTEGER NOT NULL CHECK (width > 0),
    height INTEGER NOT NULL CHECK (height > 0),
    file_sha256 BYTEA NOT NULL CHECK (octet_length(file_sha256) = 32),
    pixel_sha256 BYTEA NOT NULL CHECK (octet_length(pixel_sha256) = 32),
    phash BIGINT NOT NULL,
    manifest_id TEXT NOT NULL,
    signing_key_id TEXT NOT NULL REFERENCES peer_signing_keys (id),
    signature BYTEA NOT NULL CHECK (octet_length(signature) = 64),
    api_key_id UUID REFERENCES peer_api_keys (id),
    encoding SMALLINT NOT NULL DEFAULT 1 CHECK (encoding IN (1, 2)),
    manifest_sha256 BYTEA CHECK (manifest_sha256 IS NULL OR length(manifest_sha256) = 32)
);
CREATE INDEX IF NOT EXISTS peer_records_file_sha256_idx ON peer_records (file_sha256);
CREATE INDEX IF NOT EXISTS peer_records_pixel_sha256_idx ON peer_records (pixel_sha256);
CREATE INDEX IF NOT EXISTS peer_records_api_key_created_idx ON peer_records (api_key_id, created_at DESC);
CREATE INDEX IF NOT EXISTS peer_records_manifest_sha256_idx ON peer_records (manifest_sha256)
    WHERE manifest_sha256 IS NOT NULL;
CREATE INDEX IF NOT EXISTS peer_records_manifest_id_idx ON peer_records (manifest_id);
CREATE TABLE IF NOT EXISTS peer_record_hashes (
    record_id UUID NOT NULL REFERENCES peer_records (id) ON DELETE CASCADE,
    variant SMALLINT NOT NULL CHECK (variant BETWEEN 0 AND 63),
    phash BIGINT NOT NULL,
    phash_c0 INTEGER GENERATED ALWAYS AS ((phash >> 48) & 65535) STORED,
    phash_c1 INTEGER GENERATED ALWAYS AS ((phash >> 32) & 65535) STORED,
    phash_c2 INTEGER GENERATED ALWAYS AS ((phash >> 16) & 65535) STORED,
    phash_c3 INTEGER GENERATED ALWAYS AS (phash & 65535) STORED,
    PRIMARY KEY (record_id, variant)
);
CREATE INDEX IF NOT EXISTS peer_record_hashes_c0_idx ON peer_record_hashes (phash_c0);
CREATE INDEX IF NOT EXISTS peer_record_hashes_c1_idx ON peer_record_hashes (phash_c1);
CREATE INDEX IF NOT EXISTS peer_record_hashes_c2_idx ON peer_record_hashes (phash_c2);
CREATE INDEX IF NOT EXISTS peer_record_hashes_c3_idx ON peer_record_hashes (phash_c3);
CREATE TABLE IF NOT EXISTS peer_log_pending (
    seq BIGSERIAL PRIMARY KEY,
    record_id UUID NOT NULL UNIQUE,
    entry BYTEA NOT NULL CHECK (length(entry) BETWEEN 1 AND 65535),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION peer_notify_record_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('peer_records', NEW.id::text);
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS peer_records_notify_inserted ON peer_records;
CREATE TRIGGER peer_records_notify_inserted
    AFTER INSERT ON peer_records
    FOR EACH ROW EXECUTE FUNCTION peer_notify_record_inserted();
"""


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def uuid7() -> uuid.UUID:
    """RFC 9562 UUIDv7 (Python 3.11 has none): 48-bit Unix ms, version, 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def now_micros() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)  # Python datetimes are already microsecond-exact


def micros(when: dt.datetime) -> int:
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def rfc3339(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def i64(value: int) -> int:
    """The same 64 bits as a signed integer (PostgreSQL BIGINT)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).digest()[:16].hex()


# ---------------------------------------------------------------------------------------------
# PKI: a throwaway Ed25519 CA and signing certificate, like `hallmark init`
# ---------------------------------------------------------------------------------------------

def make_pki(keys_dir: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

    def name(cn: str) -> x509.Name:
        return x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hallmark Python peer"),
        ])

    def usage(**on: bool) -> x509.KeyUsage:
        flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                     crl_sign=False, encipher_only=False, decipher_only=False)
        flags.update(on)
        return x509.KeyUsage(**flags)

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ed25519.Ed25519PrivateKey.generate()
    ca = (x509.CertificateBuilder()
          .subject_name(name("Hallmark peer root CA")).issuer_name(name("Hallmark peer root CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, None))
    key = ed25519.Ed25519PrivateKey.generate()
    leaf = (x509.CertificateBuilder()
            .subject_name(name("Hallmark peer signer")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                                  ObjectIdentifier(C2PA_CLAIM_SIGNING_EKU)]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, None))
    pem = serialization.Encoding.PEM
    keys_dir.mkdir(parents=True, exist_ok=True)
    (keys_dir / "ca.pem").write_bytes(ca.public_bytes(pem))
    (keys_dir / "chain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    signer_key = keys_dir / "signer.key.pem"
    signer_key.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    os.chmod(signer_key, 0o600)


class Identity:
    """The signing key and chain, loaded once per process."""

    def __init__(self, keys_dir: Path):
        from cryptography.hazmat.primitives import serialization

        self.chain_pem = (keys_dir / "chain.pem").read_bytes()
        self.key_pem = (keys_dir / "signer.key.pem").read_bytes()
        self.key = serialization.load_pem_private_key(self.key_pem, None)
        self.public_raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id(self.public_raw)


# ---------------------------------------------------------------------------------------------
# The model: Hallmark's weights in the PyTorch twin of its architecture
# ---------------------------------------------------------------------------------------------

def load_generator(models_dir: Path, name: str):
    """The served generator (eval mode), its card's architecture and its version (first 12 hex
    digits of the SHA-256 of the weights file, as Hallmark names it)."""
    import torch
    from safetensors.torch import load_file

    import gan_torch

    card = tomllib.loads((models_dir / name / "model.toml").read_text())
    arch = card["architecture"]
    if arch.get("family", "dcgan") != "dcgan":
        raise SystemExit(f"{name}: only the dcgan family has a PyTorch twin here")
    path = models_dir / name / "generator.safetensors"
    version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    net = gan_torch.generator(arch["image_size"], arch["channels"], arch["latent_dim"], arch["g_width"])
    # Hallmark names the blocks up{i} (ConvTranspose2d), bn{i} (BatchNorm2d) and out; the twin is a
    # Sequential: Unflatten, then (conv, bn, relu) per stage, then conv, tanh.
    saved = load_file(str(path))
    state = {}
    stage = 0
    for index, module in enumerate(net):
        if isinstance(module, torch.nn.ConvTranspose2d):
            last = not any(isinstance(m, torch.nn.ConvTranspose2d) for m in list(net)[index + 1:])
            prefix = "out" if last else f"up{stage}"
            state[f"{index}.weight"] = saved.pop(f"{prefix}.weight")
            if module.bias is not None:
                state[f"{index}.bias"] = saved.pop(f"{prefix}.bias")
        elif isinstance(module, torch.nn.BatchNorm2d):
            for part in ("weight", "bias", "running_mean", "running_var"):
                state[f"{index}.{part}"] = saved.pop(f"bn{stage}.{part}")
            state[f"{index}.num_batches_tracked"] = torch.tensor(0)  # unused in eval mode
            stage += 1
    if saved:
        raise SystemExit(f"{path}: tensors the twin has no place for: {sorted(saved)}")
    net.load_state_dict(state, strict=True)
    net.eval()
    if env("JIT", "0") == "1":
        # TorchScript: the forward pass runs as one C++ call that releases the GIL once, instead
        # of a Python call per module that must win the GIL back from the request threads
        # (up to the 5 ms switch interval each time under load). Same outputs, bit for bit.
        example = torch.zeros(8, arch["latent_dim"])
        with torch.no_grad():
            net = torch.jit.freeze(torch.jit.trace(net, example).eval())
    return net, arch, version


class ModelThread:
    """The model's own thread, as Hallmark's: it merges the latents of concurrent requests into
    one forward pass (up to `max_batch` images, waiting at most `delay` for company) and answers
    each request's future on its event loop."""

    def __init__(self, net, max_batch: int = 256, delay: float = 0.002):
        self.net = net
        self.max_batch = max_batch
        self.delay = delay
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = 0
        self.images = 0
        threading.Thread(target=self._run, name="peer-model", daemon=True).start()

    async def generate(self, latents: np.ndarray) -> np.ndarray:
        """uint8 images [n, h, w, c] for float32 latents [n, latent_dim]."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.jobs.put((latents, loop, future))
        return await future

    def _run(self) -> None:
        import torch

        carried = None
        while True:
            first = carried if carried is not None else self.jobs.get()
            carried = None
            batch = [first]
            size = len(first[0])
            until = time.monotonic() + self.delay
            while size < self.max_batch:
                remaining = until - time.monotonic()
                try:
                    job = self.jobs.get(timeout=remaining) if remaining > 0 else self.jobs.get_nowait()
                except queue.Empty:
                    break
                if size + len(job[0]) > self.max_batch:
                    carried = job
                    break
                batch.append(job)
                size += len(job[0])
            try:
                z = torch.from_numpy(np.concatenate([job[0] for job in batch]))
                with torch.inference_mode():
                    images = self.net(z)
                pixels = ((images + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
                pixels = pixels.permute(0, 2, 3, 1).contiguous().numpy()
                self.batches += 1
                self.images += size
                at = 0
                for latents, loop, future in batch:
                    mine = pixels[at:at + len(latents)]
                    at += len(latents)
                    loop.call_soon_threadsafe(_resolve, future, mine, None)
            except Exception as error:  # answer everyone; keep the thread alive
                for _, loop, future in batch:
                    loop.call_soon_threadsafe(_resolve, future, None, error)


def _resolve(future: asyncio.Future, result, error) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def latents_for(seed: int, index: int, dim: int) -> np.ndarray:
    """Standard normal latent of image `index` of a request with `seed`, independent of batching."""
    rng = np.random.Generator(np.random.Philox(key=[seed & ((1 << 64) - 1), index]))
    return rng.standard_normal(dim, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Fingerprints (Hallmark's src/fingerprint; numpy version of scripts/hallmark_fingerprint.py)
# ---------------------------------------------------------------------------------------------

def _lanczos3(x: np.ndarray) -> np.ndarray:
    px = np.pi * x
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 3 * np.sin(px) * np.sin(px / 3) / (px * px)
    return np.where(x == 0, 1.0, np.where(np.abs(x) >= 3, 0.0, value))


def resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in]: Lanczos3 widened by the scale when shrinking, weights normalised (the image
    crate's resize, as the reference script spells it)."""
    ratio = n_in / n_out
    scale = max(ratio, 1.0)
    support = 3.0 * scale
    matrix = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * ratio
        left = max(int(np.floor(centre - support)), 0)
        right = min(int(np.ceil(centre + support)), n_in)
        j = np.arange(left, right)
        weights = _lanczos3((j + 0.5 - centre) / scale)
        matrix[i, left:right] = weights / weights.sum()
    return matrix


class Fingerprinter:
    SIDE, KEEP, GRID = 16, 8, 3  # 16x16 resample, 8x8 DCT coefficients, windows 0..3 steps

    def __init__(self, size: int):
        n = self.SIDE
        k = np.arange(n)
        self.dct = np.cos(np.pi * k[:, None] * (2 * k[None, :] + 1) / (2 * n))  # [k, i]
        self.whole = resample_matrix(size, n)
        self.step = max(size // 16, 1)
        self.window = size - self.GRID * self.step
        self.windowed = resample_matrix(self.window, n)
        self.size = size

    def _bits(self, resized: np.ndarray) -> np.ndarray:
        """resized: [m, 16, 16] floats → [m] u64 pHashes."""
        grey = np.clip(np.floor(resized + 0.5), 0, 255)
        coefficients = self.dct @ grey @ self.dct.T  # C[v, u] = sum B[v,i] X[i,j] B[u,j]
        low = coefficients[:, : self.KEEP, : self.KEEP].reshape(len(grey), -1)
        bits = low >= low.mean(axis=1, keepdims=True)
        packed = np.packbits(bits.reshape(len(grey), 8, 8), axis=2, bitorder="little")
        return packed.reshape(len(grey), 8).view(">u8").reshape(-1)

    def phashes(self, grey: np.ndarray) -> list[int]:
        """The whole image's pHash, then the 4x4 grid of windows row by row (Hallmark's
        `variant_phashes`)."""
        g = grey.astype(np.float64)
        whole = self.whole @ g @ self.whole.T
        if min(g.shape) < 16:
            return [int(self._bits(whole[None])[0])]
        w, s = self.window, self.step
        windows = np.stack([g[gy * s: gy * s + w, gx * s: gx * s + w]
                            for gy in range(self.GRID + 1) for gx in range(self.GRID + 1)])
        resized = self.windowed @ windows @ self.windowed.T
        return [int(h) for h in self._bits(np.concatenate([whole[None], resized]))]


def pixel_sha256(pixels: np.ndarray) -> bytes:
    """SHA-256 over the domain, the size and the RGBA8 pixels (Hallmark's `pixel_sha256`)."""
    h, w, c = pixels.shape
    rgba = np.empty((h, w, 4), np.uint8)
    if c == 1:
        rgba[..., :3] = pixels
    else:
        rgba[..., :3] = pixels[..., :3]
    rgba[..., 3] = 255
    digest = hashlib.sha256(PIXEL_HASH_DOMAIN)
    digest.update(struct.pack(">II", w, h))
    digest.update(rgba.tobytes())
    return digest.digest()


def reference_phash(grey: np.ndarray) -> int:
    """The pure-Python reference (scripts/hallmark_fingerprint.py) of one image's pHash."""
    import hallmark_fingerprint as ref

    coefficients = ref.dct_2d(ref.resize(grey.tolist(), ref.SIDE))
    low = [coefficients[v][u] for v in range(ref.KEEP) for u in range(ref.KEEP)]
    mean = sum(low) / len(low)
    bits = [c >= mean for c in low]
    packed = bytes(sum(1 << b for b in range(8) if bits[byte * 8 + b]) for byte in range(8))
    return int.from_bytes(packed, "big")


# ---------------------------------------------------------------------------------------------
# Records (Hallmark's canonical v2 encoding, src/provenance/record.rs)
# ---------------------------------------------------------------------------------------------

def canonical_bytes(f: dict) -> bytes:
    parts = [
        f["id"].bytes,
        struct.pack(">q", micros(f["created_at"])),
        f["model"].encode(),
        f["model_version"].encode(),
        struct.pack(">q", f["seed"]),
        f["format"].encode(),
        struct.pack(">i", f["width"]),
        struct.pack(">i", f["height"]),
        f["file_sha256"],
        f["pixel_sha256"],
        struct.pack(">q", f["phash"]),
        f["manifest_id"].encode(),
        f["signing_key_id"].encode(),
        b"" if f["api_key_id"] is None else hashlib.sha256(
            KEY_COMMITMENT_DOMAIN + f["id"].bytes + f["api_key_id"].bytes).digest(),
    ]
    out = bytearray(RECORD_DOMAIN_V2)
    for part in parts:
        out += struct.pack(">I", len(part))
        out += part
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# The per-image work
# ---------------------------------------------------------------------------------------------

class Pipeline:
    def __init__(self, identity: Identity, model: str, version: str, size: int):
        import c2pa

        self.c2pa = c2pa
        self.identity = identity
        self.model = model
        self.version = version
        self.fingerprinter = Fingerprinter(size)
        # One context and signer per thread: c2pa-python objects wrap native handles, and
        # sharing them across threads is not documented as safe.
        self._local = threading.local()
        self.settings = {"verify": {"verify_after_sign": False},
                         "builder": {"thumbnail": {"enabled": False}}}

    def _c2pa(self):
        local = self._local
        if not hasattr(local, "signer"):
            c2pa = self.c2pa
            local.context = c2pa.Context.from_dict(self.settings)
            local.signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
                c2pa.C2paSigningAlg.ED25519, self.identity.chain_pem, self.identity.key_pem, None))
        return local.context, local.signer

    def finish(self, pixels: np.ndarray, seed: int, index: int, fmt: str, quality: int,
               api_key_id: Optional[uuid.UUID]) -> dict:
        """Encode, fingerprint, sign (manifest and record) one image; its stage times in s."""
        from PIL import Image

        t0 = time.perf_counter()
        grey = pixels[..., 0] if pixels.shape[2] == 1 else None
        image = Image.fromarray(grey if grey is not None else pixels, "L" if grey is not None else "RGB")
        out = io.BytesIO()
        if fmt == "png":
            image.save(out, "PNG")
            mime = "image/png"
        else:
            image.save(out, "JPEG", quality=quality)
            mime = "image/jpeg"
        encoded = out.getvalue()
        t1 = time.perf_counter()

        if grey is None:  # BT.709 luma, integer weights (Hallmark's image crate)
            p = pixels.astype(np.uint32)
            grey = ((2126 * p[..., 0] + 7152 * p[..., 1] + 722 * p[..., 2]) // 10000).astype(np.uint8)
        variants = self.fingerprinter.phashes(grey)
        phash = variants[0]
        pixel_hash = pixel_sha256(pixels)
        t2 = time.perf_counter()

        record_id = uuid7()
        seed_db = i64(seed)
        manifest_id = f"urn:c2pa:{uuid.uuid4()}"
        definition = {
            "label": manifest_id,
            "title": f"{self.model} seed {seed} image {index}",
            "format": mime,
            "claim_generator_info": [{"name": "hallmark-python-peer", "version": VERSION}],
            "assertions": [
                {"label": "c2pa.actions", "data": {"actions": [{
                    "action": "c2pa.created",
                    "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                    "softwareAgent": {"name": self.model, "version": self.version},
                }]}},
                {"label": HALLMARK_ASSERTION, "data": {
                    "record_id": str(record_id), "model": self.model,
                    "model_version": self.version, "seed": seed_db, "phash": f"{phash:016x}",
                }},
                {"label": "c2pa.soft-binding", "data": {
                    "alg": SOFT_BINDING_ALG,
                    "name": "Hallmark perceptual hash of the whole image (docs/soft-binding.md)",
                    "blocks": [{"scope": {}, "value": base64.b64encode(phash.to_bytes(8, "big")).decode()}],
                }},
            ],
        }
        context, signer = self._c2pa()
        builder = self.c2pa.Builder(json.dumps(definition), context=context)
        try:
            dest = io.BytesIO()
            manifest = builder.sign(signer, mime, io.BytesIO(encoded), dest)
        finally:
            builder.close()
        signed = dest.getvalue()
        fields = {
            "id": record_id,
            "created_at": now_micros(),
            "model": self.model,
            "model_version": self.version,
            "seed": seed_db,
            "format": fmt,
            "width": int(pixels.shape[1]),
            "height": int(pixels.shape[0]),
            "file_sha256": hashlib.sha256(signed).digest(),
            "pixel_sha256": pixel_hash,
            "phash": i64(phash),
            "manifest_id": manifest_id,
            "signing_key_id": self.identity.key_id,
            "api_key_id": api_key_id,
        }
        canonical = canonical_bytes(fields)
        signature = self.identity.key.sign(canonical)
        t3 = time.perf_counter()
        return {
            "fields": fields,
            "signature": signature,
            "entry": canonical + signature,
            "variants": [i64(v) for v in variants],
            "bytes": signed,
            "mime": mime,
            "manifest": bytes(manifest),
            "manifest_sha256": hashlib.sha256(manifest).digest(),
            "times": (t1 - t0, t2 - t1, t3 - t2),
        }


# ---------------------------------------------------------------------------------------------
# Blob store: content-addressed, durable before the record commits
# ---------------------------------------------------------------------------------------------

class Blobs:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.durable = {str(root)}
        self.lock = threading.Lock()

    def path(self, sha: bytes) -> Path:
        h = sha.hex()
        return self.root / "sha256" / h[:2] / h[2:4] / h

    def put(self, sha: bytes, data: bytes) -> None:
        """Temporary file, fsync, rename, fsync of the directory (and of new parents)."""
        path = self.path(sha)
        directory = path.parent
        if str(directory) not in self.durable:
            directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        d = directory
        synced = []
        while True:
            dfd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            synced.append(str(d))
            if str(d) in self.durable or d == self.root:
                break
            d = d.parent
        with self.lock:
            self.durable.update(synced)

    def delete(self, sha: bytes) -> None:
        try:
            self.path(sha).unlink()
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------------

from fastapi import Depends, FastAPI, Header, HTTPException, Request  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic import BaseModel, ConfigDict  # noqa: E402


class GenerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: Optional[str] = None
    count: int
    seed: Optional[int] = None
    format: Literal["png", "jpeg"] = "png"
    quality: Optional[int] = None
    wait_for_log: bool = False


class State:
    pass


state = State()


async def keep_session(connection) -> None:
    """asyncpg's pool resets each connection it takes back (advisory locks, cursors, LISTENs,
    settings: one more round trip per release, two per request here). This service never
    changes session state, so there is nothing to reset; sqlx's pool does not reset either."""


async def lifespan(app: FastAPI):
    import asyncpg
    import torch

    threads = int(env("TORCH_THREADS", "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    data = Path(env("DATA_DIR", "/tmp/hallmark-peer"))
    models = Path(env("MODELS_DIR", str(REPO / "models")))
    name = env("MODEL", "fashion-dcgan32-ema")
    net, arch, version = load_generator(models, name)
    state.model_name, state.version = name, version
    state.latent_dim = arch["latent_dim"]
    state.model = ModelThread(net, int(env("MAX_BATCH", "256")), float(env("BATCH_DELAY_MS", "2")) / 1000)
    state.identity = Identity(data / "keys")
    state.pipeline = Pipeline(state.identity, name, version, arch["image_size"])
    state.blobs = Blobs(data / "blobs")
    threads = int(env("IMAGE_THREADS", "0")) or min(32, (os.cpu_count() or 1) + 4)
    state.executor = ThreadPoolExecutor(threads, thread_name_prefix="peer-image")
    # Blob writes wait on fsync, not the CPU: a pool of their own, large enough that concurrent
    # requests' fsyncs overlap (the file system commits them together) and never queue behind
    # the CPU work (Hallmark: tokio's blocking pool, up to 512 threads).
    state.io = ThreadPoolExecutor(int(env("IO_THREADS", "64")), thread_name_prefix="peer-io")
    size = int(env("POOL_SIZE", "10"))
    state.pool = await asyncpg.create_pool(database_url(), min_size=size, max_size=size,
                                           ssl=ssl_option(database_url()), reset=keep_session)
    # Warm up: one forward pass and one signed image, off the clock of the first request.
    await state.model.generate(latents_for(0, 0, state.latent_dim)[None])
    state.pipeline.finish(np.zeros((arch["image_size"], arch["image_size"], arch["channels"]), np.uint8),
                          0, 0, "png", 0, None)
    yield
    await state.pool.close()
    state.executor.shutdown(wait=False)
    state.io.shutdown(wait=False)


app = FastAPI(title="Hallmark Python peer", lifespan=lifespan, docs_url=None, redoc_url=None)


def error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(status, {"code": code, "message": message})


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException):
    body = exc.detail if isinstance(exc.detail, dict) else {"code": "error", "message": str(exc.detail)}
    return JSONResponse({"error": body}, status_code=exc.status_code)


async def authenticate(authorization: Optional[str] = Header(None)) -> uuid.UUID:
    """The calling generator key's id: one indexed query on the SHA-256 of the key."""
    if authorization is None:
        raise error(401, "missing_api_key", "send Authorization: Bearer <api key>")
    if not authorization.startswith("Bearer ") or not authorization[7:].strip():
        raise error(401, "malformed_authorization", "expected Authorization: Bearer <api key>")
    key = authorization[7:].strip()
    row = None
    if key.startswith("hm_"):
        row = await state.pool.fetchrow(
            "SELECT id, role FROM peer_api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            hashlib.sha256(key.encode()).digest())
    if row is None:
        raise error(401, "invalid_api_key", "the API key is unknown or has been revoked")
    if row["role"] not in ("generator", "admin"):
        raise error(403, "forbidden", f"this route needs a generator key; yours is a {row['role']} key")
    return row["id"]


INSERT_RECORDS = """
INSERT INTO peer_records (id, created_at, model, model_version, seed, format, width, height,
    file_sha256, pixel_sha256, phash, manifest_id, signing_key_id, api_key_id, encoding,
    signature, manifest_sha256)
SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::int8[],
    $6::text[], $7::int4[], $8::int4[], $9::bytea[], $10::bytea[], $11::int8[],
    $12::text[], $13::text[], $14::uuid[], $15::int2[], $16::bytea[], $17::bytea[])
"""
INSERT_HASHES = """
INSERT INTO peer_record_hashes (record_id, variant, phash)
SELECT * FROM UNNEST($1::uuid[], $2::int2[], $3::int8[])
"""
INSERT_LOG = """
INSERT INTO peer_log_pending (record_id, entry)
SELECT record_id, entry FROM UNNEST($1::uuid[], $2::bytea[]) WITH ORDINALITY AS t(record_id, entry, n)
ORDER BY n
"""


async def commit(images: list[dict]) -> None:
    """Blobs first (each image and its manifest store, concurrently, durable), then the records,
    their hashes and log entries in one transaction; the blobs are removed if that fails."""
    loop = asyncio.get_running_loop()
    blobs = state.blobs
    try:
        await asyncio.gather(*[
            loop.run_in_executor(state.io, blobs.put, sha, data)
            for image in images
            for sha, data in ((image["fields"]["file_sha256"], image["bytes"]),
                              (image["manifest_sha256"], image["manifest"]))])
        columns = [[image["fields"][k] for image in images] for k in (
            "id", "created_at", "model", "model_version", "seed", "format", "width", "height",
            "file_sha256", "pixel_sha256", "phash", "manifest_id", "signing_key_id", "api_key_id")]
        columns.append([2] * len(images))
        columns.append([image["signature"] for image in images])
        columns.append([image["manifest_sha256"] for image in images])
        hash_ids, hash_variants, hash_values = [], [], []
        for image in images:
            for variant, value in enumerate(image["variants"]):
                hash_ids.append(image["fields"]["id"])
                hash_variants.append(variant)
                hash_values.append(value)
        async with state.pool.acquire() as connection:
            async with connection.transaction():
                await connection.execute(INSERT_RECORDS, *columns)
                await connection.execute(INSERT_HASHES, hash_ids, hash_variants, hash_values)
                await connection.execute(INSERT_LOG, [image["fields"]["id"] for image in images],
                                         [image["entry"] for image in images])
    except BaseException:
        for image in images:
            blobs.delete(image["fields"]["file_sha256"])
            blobs.delete(image["manifest_sha256"])
        raise


@app.post("/v1/generations")
async def create(body: GenerationRequest, request: Request,
                 key_id: uuid.UUID = Depends(authenticate)) -> Response:
    if body.model is not None and body.model != state.model_name:
        raise error(404, "unknown_model",
                    f"model {body.model!r} is not served here; this service serves {state.model_name!r}")
    if not 1 <= body.count <= MAX_COUNT:
        raise error(400, "invalid_count", f"count must be between 1 and {MAX_COUNT}, got {body.count}")
    if body.format == "png" and body.quality is not None:
        raise error(400, "invalid_quality", "quality applies to JPEG only")
    quality = 90 if body.quality is None else body.quality
    if body.format == "jpeg" and not 1 <= quality <= 100:
        raise error(400, "invalid_quality", f"JPEG quality must be between 1 and 100, got {quality}")
    if body.seed is not None and not 0 <= body.seed < 1 << 64:
        raise error(400, "invalid_body", "seed must be an unsigned 64-bit integer")
    if body.wait_for_log:
        raise error(400, "invalid_body", "wait_for_log: this peer keeps no transparency log")
    accept = request.headers.get("accept", "")
    raw = any(part.strip().startswith("image/") for part in accept.split(","))
    if raw and body.count != 1:
        raise error(406, "not_acceptable", "image bytes can be returned for count 1 only; use JSON for more")
    seed = body.seed if body.seed is not None else secrets.randbits(64) & RANDOM_SEED_BITS

    started = time.perf_counter()
    latents = np.stack([latents_for(seed, i, state.latent_dim) for i in range(body.count)])
    pixels = await state.model.generate(latents)
    inference = time.perf_counter() - started

    loop = asyncio.get_running_loop()
    finish = state.pipeline.finish
    images = await asyncio.gather(*[
        loop.run_in_executor(state.executor, finish, pixels[i], seed, i, body.format, quality, key_id)
        for i in range(body.count)])
    started = time.perf_counter()
    await commit(images)
    store = time.perf_counter() - started
    encode = sum(image["times"][0] for image in images)
    fingerprint = sum(image["times"][1] for image in images)
    sign = sum(image["times"][2] for image in images)
    timing = ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in (
        ("inference", inference), ("encode", encode), ("fingerprint", fingerprint),
        ("sign", sign), ("store", store)))
    if raw:
        image = images[0]
        f = image["fields"]
        return Response(image["bytes"], status_code=200, media_type=image["mime"], headers={
            "ETag": f'"{f["file_sha256"].hex()}"',
            "X-Hallmark-Record-Id": str(f["id"]),
            "Server-Timing": timing,
            "Location": f"/v1/images/{f['id']}",
        })
    listed = []
    for image in images:
        f = image["fields"]
        listed.append({
            "id": str(f["id"]),
            "image_url": f"/v1/images/{f['id']}",
            "record_url": f"/v1/records/{f['id']}",
            "format": f["format"],
            "width": f["width"],
            "height": f["height"],
            "sha256": f["file_sha256"].hex(),
            "pixel_sha256": f["pixel_sha256"].hex(),
            "phash": f"{f['phash'] & ((1 << 64) - 1):016x}",
            "manifest_id": f["manifest_id"],
            "created_at": rfc3339(f["created_at"]),
        })
    payload = {"model": state.model_name, "model_version": state.version, "seed": seed, "images": listed}
    return Response(json.dumps(payload, separators=(",", ":")).encode(), status_code=201,
                    media_type="application/json", headers={"Server-Timing": timing})


@app.get("/v1/images/{record_id}")
async def image_bytes(record_id: uuid.UUID, key_id: uuid.UUID = Depends(authenticate)) -> Response:
    row = await state.pool.fetchrow("SELECT file_sha256, format FROM peer_records WHERE id = $1", record_id)
    if row is None:
        raise error(404, "record_not_found", "no such record")
    data = state.blobs.path(row["file_sha256"]).read_bytes()
    return Response(data, media_type="image/png" if row["format"] == "png" else "image/jpeg")


@app.get("/readyz")
async def readyz() -> Response:
    await state.pool.fetchval("SELECT 1")
    return Response(b'{"status":"ready"}', media_type="application/json")


@app.get("/stats")
async def stats() -> Response:
    import torch

    return Response(json.dumps({"batches": state.model.batches, "images": state.model.images,
                                "torch_threads": torch.get_num_threads(), "pid": os.getpid()}).encode(),
                    media_type="application/json")


# ---------------------------------------------------------------------------------------------
# Command line: init (database, schema, PKI, an API key) and serve
# ---------------------------------------------------------------------------------------------

async def init(url: str, data: Path, key_name: str) -> str:
    import asyncpg

    base, _, dbname = url.rpartition("/")
    dbname = dbname.split("?")[0]
    admin = await asyncpg.connect(base + "/postgres", ssl=ssl_option(url))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
            await admin.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await admin.close()
    keys = data / "keys"
    if not (keys / "chain.pem").exists():
        make_pki(keys)
    identity = Identity(keys)
    connection = await asyncpg.connect(url, ssl=ssl_option(url))
    try:
        await connection.execute("SELECT pg_advisory_lock(7263)")
        await connection.execute(SCHEMA)
        await connection.execute(
            "INSERT INTO peer_signing_keys (id, public_key, cert_chain_pem) VALUES ($1, $2, $3) "
            "ON CONFLICT (id) DO NOTHING", identity.key_id, identity.public_raw, identity.chain_pem.decode())
        key = "hm_" + secrets.token_hex(32)
        await connection.execute(
            "INSERT INTO peer_api_keys (id, name, role, prefix, key_hash) VALUES ($1, $2, 'generator', $3, $4)",
            uuid7(), key_name, key[:11], hashlib.sha256(key.encode()).digest())
    finally:
        await connection.close()
    return key


def self_check() -> None:
    """The numpy fingerprints against the pure-Python reference on a few images."""
    rng = np.random.default_rng(1)
    fp = Fingerprinter(32)
    for trial in range(3):
        grey = (rng.random((32, 32)) * 255).astype(np.uint8)
        grey[:, :6] = 0
        mine = fp.phashes(grey)
        w, s = fp.window, fp.step
        expected = [reference_phash(grey)] + [
            reference_phash(grey[gy * s: gy * s + w, gx * s: gx * s + w])
            for gy in range(4) for gx in range(4)]
        if mine != expected:
            raise SystemExit(f"fingerprint self-check failed on image {trial}: {mine} != {expected}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("init", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--database-url", default=database_url())
        p.add_argument("--data-dir", default=env("DATA_DIR", "/tmp/hallmark-peer"))
    sub.choices["init"].add_argument("--key-name", default="peer")
    serve = sub.choices["serve"]
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--torch-threads", type=int, default=0, help="0: torch's default")
    serve.add_argument("--image-threads", type=int, default=0, help="0: min(32, cores + 4)")
    serve.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    os.environ["PEER_DATABASE_URL"] = args.database_url
    os.environ["PEER_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.command == "init":
        self_check()
        print(asyncio.run(init(args.database_url, Path(args.data_dir), args.key_name)))
        return 0
    os.environ["PEER_TORCH_THREADS"] = str(args.torch_threads)
    os.environ["PEER_IMAGE_THREADS"] = str(args.image_threads)
    import uvicorn

    uvicorn.run("app:app", app_dir=str(HERE), host=args.host, port=args.port, workers=args.workers,
                loop="uvloop", http="httptools", log_level=args.log_level, access_log=False,
                backlog=4096)
    return 0


if __name__ == "__main__":
    sys.exit(main())
