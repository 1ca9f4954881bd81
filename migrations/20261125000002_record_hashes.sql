-- The perceptual hashes the near-duplicate search looks in (src/verify/registry.rs): for each record
-- the whole image's pHash (variant 0) and those of nine 90% x 90% crop windows (variants 1-9), so a
-- cropped copy is near one of them (src/fingerprint/align.rs).

CREATE TABLE record_hashes (
    record_id UUID     NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    variant   SMALLINT NOT NULL CHECK (variant BETWEEN 0 AND 15),
    -- 64-bit pHash as a signed BIGINT (same bits).
    phash     BIGINT   NOT NULL,
    -- Its four 16-bit chunks for multi-index hashing: a hash within d bits of a query has some
    -- chunk within d/4 bits of the query's chunk.
    phash_c0  INTEGER  GENERATED ALWAYS AS ((phash >> 48) & 65535) STORED,
    phash_c1  INTEGER  GENERATED ALWAYS AS ((phash >> 32) & 65535) STORED,
    phash_c2  INTEGER  GENERATED ALWAYS AS ((phash >> 16) & 65535) STORED,
    phash_c3  INTEGER  GENERATED ALWAYS AS (phash & 65535) STORED,
    PRIMARY KEY (record_id, variant)
);

CREATE INDEX record_hashes_c0_idx ON record_hashes (phash_c0);
CREATE INDEX record_hashes_c1_idx ON record_hashes (phash_c1);
CREATE INDEX record_hashes_c2_idx ON record_hashes (phash_c2);
CREATE INDEX record_hashes_c3_idx ON record_hashes (phash_c3);

-- Records made before this table existed are searchable by their whole-image hash.
INSERT INTO record_hashes (record_id, variant, phash) SELECT id, 0, phash FROM records;

-- The search now uses record_hashes; the chunk columns on records are no longer read.
DROP INDEX records_phash_c0_idx;
DROP INDEX records_phash_c1_idx;
DROP INDEX records_phash_c2_idx;
DROP INDEX records_phash_c3_idx;
