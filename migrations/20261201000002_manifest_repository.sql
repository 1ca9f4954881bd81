-- Durable Content Credentials (the C2PA manifest repository): each record's manifest store, the
-- JUMBF bytes `application/c2pa`, is kept in the blob store beside the image, content-addressed by
-- its SHA-256. NULL for records made before this, until `hallmark backfill` extracts theirs from
-- the stored signed image. The Soft Binding Resolution API finds a store by its manifest id.
ALTER TABLE records ADD COLUMN manifest_sha256 BYTEA
    CHECK (manifest_sha256 IS NULL OR length(manifest_sha256) = 32);
CREATE INDEX records_manifest_sha256_idx ON records (manifest_sha256)
    WHERE manifest_sha256 IS NOT NULL;
CREATE INDEX records_manifest_id_idx ON records (manifest_id);
