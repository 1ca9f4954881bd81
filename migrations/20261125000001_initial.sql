-- Hallmark's registry: API keys, the service's signing keys, generated-image records and verification checks.

CREATE TABLE api_keys (
    id          UUID PRIMARY KEY,
    name        TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        TEXT        NOT NULL CHECK (role IN ('generator', 'moderator', 'admin')),
    -- The first characters of the key, shown in listings so people can tell keys apart.
    prefix      TEXT        NOT NULL,
    -- SHA-256 of the whole key. Keys carry 256 random bits, so a fast hash is enough
    -- (no dictionary to attack) and lets a request find its key by one index probe.
    key_hash    BYTEA       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);

-- Every Ed25519 key that has signed records. Old keys stay so that rotated-out records still verify.
CREATE TABLE signing_keys (
    -- Hex of the first 16 bytes of SHA-256(public key).
    id             TEXT        PRIMARY KEY,
    public_key     BYTEA       NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
    -- The signing certificate chain (leaf first), PEM; lets anyone check a manifest offline.
    cert_chain_pem TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at     TIMESTAMPTZ
);

CREATE TABLE records (
    id             UUID        PRIMARY KEY,
    created_at     TIMESTAMPTZ NOT NULL,
    model          TEXT        NOT NULL,
    model_version  TEXT        NOT NULL,
    seed           BIGINT      NOT NULL,
    format         TEXT        NOT NULL CHECK (format IN ('png', 'jpeg', 'webp')),
    width          INTEGER     NOT NULL CHECK (width > 0),
    height         INTEGER     NOT NULL CHECK (height > 0),
    -- SHA-256 of the signed file as served; also the blob store's key.
    file_sha256    BYTEA       NOT NULL CHECK (octet_length(file_sha256) = 32),
    -- SHA-256 of the decoded pixels, which survives stripping of metadata from a lossless file.
    pixel_sha256   BYTEA       NOT NULL CHECK (octet_length(pixel_sha256) = 32),
    -- 64-bit perceptual hash of the pixels, stored as a signed BIGINT (same bits).
    phash          BIGINT      NOT NULL,
    -- Its four 16-bit chunks for multi-index hashing: any hash within Hamming distance 3 of a
    -- query shares at least one chunk exactly, so a near-duplicate search is four index probes.
    phash_c0       INTEGER     GENERATED ALWAYS AS ((phash >> 48) & 65535) STORED,
    phash_c1       INTEGER     GENERATED ALWAYS AS ((phash >> 32) & 65535) STORED,
    phash_c2       INTEGER     GENERATED ALWAYS AS ((phash >> 16) & 65535) STORED,
    phash_c3       INTEGER     GENERATED ALWAYS AS (phash & 65535) STORED,
    -- The C2PA manifest label (urn:c2pa:...) embedded in the file.
    manifest_id    TEXT        NOT NULL,
    signing_key_id TEXT        NOT NULL REFERENCES signing_keys (id),
    -- Ed25519 signature over the record's canonical encoding (see src/provenance/record.rs).
    signature      BYTEA       NOT NULL CHECK (octet_length(signature) = 64),
    -- The API key that asked for the image; NULL for images made from the command line.
    api_key_id     UUID        REFERENCES api_keys (id)
);

CREATE INDEX records_file_sha256_idx  ON records (file_sha256);
CREATE INDEX records_pixel_sha256_idx ON records (pixel_sha256);
CREATE INDEX records_phash_c0_idx ON records (phash_c0);
CREATE INDEX records_phash_c1_idx ON records (phash_c1);
CREATE INDEX records_phash_c2_idx ON records (phash_c2);
CREATE INDEX records_phash_c3_idx ON records (phash_c3);
CREATE INDEX records_api_key_created_idx ON records (api_key_id, created_at DESC);

CREATE TABLE checks (
    id                UUID        PRIMARY KEY,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Who asked; NULL for the public look-up.
    api_key_id        UUID        REFERENCES api_keys (id),
    file_sha256       BYTEA       NOT NULL CHECK (octet_length(file_sha256) = 32),
    file_name         TEXT,
    verdict           TEXT        NOT NULL,
    matched_record_id UUID        REFERENCES records (id),
    -- The whole report as answered, so a check can be shown again exactly.
    report            JSONB       NOT NULL
);

CREATE INDEX checks_created_idx ON checks (created_at DESC, id DESC);
CREATE INDEX checks_verdict_created_idx ON checks (verdict, created_at DESC, id DESC);
