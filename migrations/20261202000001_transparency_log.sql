-- The public transparency log (src/tlog/): every record is appended to a C2SP tlog-tiles Merkle
-- log. A record's transaction hands its entry to the sequencer through `log_pending`; the one
-- integrator holding the advisory lock moves pending rows into `log_entries` with consecutive
-- indices, stores the new Merkle hashes and signs a checkpoint, all in one transaction.
--
-- No foreign key to `records`: a deleted record must stay detectable (`hallmark log verify`),
-- not cascade its log entry away.

-- Entries waiting for the next integration, in the order they were handed over.
CREATE TABLE log_pending (
    seq BIGSERIAL PRIMARY KEY,
    record_id UUID NOT NULL UNIQUE,
    entry BYTEA NOT NULL CHECK (length(entry) BETWEEN 1 AND 65535),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The log itself: entry `idx` (0-based, no gaps) is the entry of record `record_id`.
CREATE TABLE log_entries (
    idx BIGINT PRIMARY KEY CHECK (idx >= 0),
    record_id UUID NOT NULL UNIQUE,
    entry BYTEA NOT NULL CHECK (length(entry) BETWEEN 1 AND 65535)
);

-- The Merkle tree's stored hashes, by the stored-hash index of Crosby and Wallach (as Go's
-- sumdb tlog and the tlog_tiles crate number them): each leaf hash, then the hash of each
-- complete subtree it closes. Tiles are cut from these.
CREATE TABLE log_hashes (
    idx BIGINT PRIMARY KEY CHECK (idx >= 0),
    hash BYTEA NOT NULL CHECK (length(hash) = 32)
);

-- Every checkpoint the log has signed: the tree size, its root and the signed note as served.
CREATE TABLE log_checkpoints (
    size BIGINT PRIMARY KEY CHECK (size >= 0),
    root BYTEA NOT NULL CHECK (length(root) = 32),
    note TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
