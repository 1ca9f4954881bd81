-- Enhancements (src/enhance/): a record may be an edit of an upload. It names the upload by the
-- SHA-256 of its bytes and the operation (`restore`, `inpaint`, `upscale`), and its signature
-- covers both: canonical encoding 3 (src/provenance/record.rs). Generated images stay on
-- encoding 2 with neither field.
ALTER TABLE records
    ADD COLUMN parent_sha256 BYTEA CHECK (octet_length(parent_sha256) = 32),
    ADD COLUMN operation TEXT CHECK (operation IN ('restore', 'inpaint', 'upscale')),
    ADD CONSTRAINT records_edit_fields CHECK (
        (parent_sha256 IS NULL) = (operation IS NULL)
        AND (parent_sha256 IS NULL OR encoding = 3)
    );
ALTER TABLE records DROP CONSTRAINT records_encoding_check;
ALTER TABLE records ADD CONSTRAINT records_encoding_check CHECK (encoding IN (1, 2, 3));

-- "Which enhancements were made of this upload?"
CREATE INDEX records_parent_sha256 ON records (parent_sha256) WHERE parent_sha256 IS NOT NULL;
