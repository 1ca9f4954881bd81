-- The listed soft binding (docs/soft-binding.md): each generated image's ISCC Content-Code Image
-- (ISO 24138, 256 bits), the value of its manifest's `io.iscc.v0` soft-binding assertion, by which
-- the Soft Binding Resolution API finds records as well as by Hallmark's own fingerprint. Records
-- made before this have none until `hallmark backfill` computes theirs from the stored images.

CREATE TABLE record_iscc (
    record_id UUID   PRIMARY KEY REFERENCES records (id) ON DELETE CASCADE,
    -- The code's 256-bit body as four 64-bit words, most significant first, each a signed BIGINT
    -- (same bits).
    w0        BIGINT NOT NULL,
    w1        BIGINT NOT NULL,
    w2        BIGINT NOT NULL,
    w3        BIGINT NOT NULL,
    -- Its sixteen 16-bit chunks, each tagged with its position (position * 65536 + chunk), for
    -- multi-index hashing: a body within d bits of a query has a chunk within d / 16 bits of the
    -- query's chunk at the same position, so a search is one probe of the GIN index for the
    -- query's tagged neighbours (src/store/record_iscc.rs).
    chunks    INT4[] GENERATED ALWAYS AS (ARRAY[
        (0 * 65536 + ((w0 >> 48) & 65535))::int4,
        (1 * 65536 + ((w0 >> 32) & 65535))::int4,
        (2 * 65536 + ((w0 >> 16) & 65535))::int4,
        (3 * 65536 + (w0 & 65535))::int4,
        (4 * 65536 + ((w1 >> 48) & 65535))::int4,
        (5 * 65536 + ((w1 >> 32) & 65535))::int4,
        (6 * 65536 + ((w1 >> 16) & 65535))::int4,
        (7 * 65536 + (w1 & 65535))::int4,
        (8 * 65536 + ((w2 >> 48) & 65535))::int4,
        (9 * 65536 + ((w2 >> 32) & 65535))::int4,
        (10 * 65536 + ((w2 >> 16) & 65535))::int4,
        (11 * 65536 + (w2 & 65535))::int4,
        (12 * 65536 + ((w3 >> 48) & 65535))::int4,
        (13 * 65536 + ((w3 >> 32) & 65535))::int4,
        (14 * 65536 + ((w3 >> 16) & 65535))::int4,
        (15 * 65536 + (w3 & 65535))::int4
    ]) STORED
);

CREATE INDEX record_iscc_chunks_idx ON record_iscc USING gin (chunks);
