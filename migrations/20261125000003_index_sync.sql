-- The in-memory near-duplicate index of each running service (src/verify/index.rs) follows the
-- registry through notifications: each new record's id is sent on `hallmark_records` when its
-- transaction commits (never for a rolled-back one), after its hashes are in `record_hashes`
-- (both are written in one transaction, src/generation/mod.rs).

CREATE FUNCTION notify_record_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hallmark_records', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER records_notify_inserted
    AFTER INSERT ON records
    FOR EACH ROW EXECUTE FUNCTION notify_record_inserted();

-- Records now register seventeen variant hashes (the whole image and a 4x4 grid of crop windows,
-- src/fingerprint/align.rs); those made before keep their ten (whole + nine 90% windows), which
-- the search reads alike. Room for larger grids later.
ALTER TABLE record_hashes DROP CONSTRAINT record_hashes_variant_check;
ALTER TABLE record_hashes ADD CONSTRAINT record_hashes_variant_check CHECK (variant BETWEEN 0 AND 63);
