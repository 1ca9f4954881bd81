-- Which canonical encoding a record's signature covers (src/provenance/record.rs): 1 signs the
-- API key id itself; 2 signs a commitment to it, so that public answers can omit the key id and
-- still be checked offline. Existing rows are version 1.
ALTER TABLE records
    ADD COLUMN encoding SMALLINT NOT NULL DEFAULT 1 CHECK (encoding IN (1, 2));
