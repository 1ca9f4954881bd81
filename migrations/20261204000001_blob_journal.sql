-- The local blob store's write-ahead copy (src/store/blob_journal.rs). A generation writes its
-- blobs to files without fsync and commits their bytes here in the same statement as its
-- records, so the one WAL flush of that commit makes them durable; a checkpoint every
-- storage.blob_sync_interval_ms syncs the blob file system once (syncfs) and deletes the rows it
-- covered, and `hallmark serve` rewrites whatever is left here (a crash or power cut between
-- the two) before it answers. Empty on the S3 backend, whose puts are durable when acknowledged.
CREATE TABLE blob_journal (
    sha256     BYTEA PRIMARY KEY,
    bytes      BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Signed PNG/JPEG files and manifest stores do not compress: no pglz attempt, and rows of up to
-- ~8 kB stay in the table's own page instead of TOAST chunks.
ALTER TABLE blob_journal ALTER COLUMN bytes SET STORAGE EXTERNAL;
ALTER TABLE blob_journal SET (toast_tuple_target = 8160);
