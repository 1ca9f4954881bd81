-- When each log entry was handed to the sequencer (its record's commit), kept when it is
-- integrated: with the time of the first checkpoint that includes it, this is the entry's
-- integration delay (`cargo bench --bench tlog`, and the
-- `hallmark_log_integration_delay_seconds` histogram as it happens). NULL for entries
-- integrated before this column existed.
ALTER TABLE log_entries ADD COLUMN queued_at TIMESTAMPTZ;
