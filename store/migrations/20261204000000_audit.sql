-- The audit store (flow 7; see src/audit.rs): every event of every topic and every dead letter,
-- append-only, keyed so that recording the same record again changes nothing. `audit_refs`
-- holds the business references of each event (PO, invoice, shipment, payment, file, content
-- item, ...) that lineage queries follow from one event to the next.

CREATE TABLE IF NOT EXISTS audit_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    source_system TEXT NOT NULL,
    partner TEXT NOT NULL,
    business_key TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    -- when gridsync learned of it (the envelope's ingested_at): a transaction's timeline is in
    -- this order, causal on one clock, where documents' own times may be coarse or late
    seen_at BIGINT NOT NULL,
    summary TEXT NOT NULL,
    -- what the open-items query needs without parsing bodies: a side effect's action, a
    -- status or acknowledgement's verdict, an invoice's due date
    action TEXT,
    status TEXT,
    due_at BIGINT,
    content_item_id TEXT,
    content_version BIGINT,
    topic TEXT NOT NULL,
    partition_no BIGINT NOT NULL,
    record_offset BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_partner_time ON audit_events (partner, occurred_at, event_id);
CREATE INDEX IF NOT EXISTS audit_events_type_time ON audit_events (event_type, occurred_at);
CREATE INDEX IF NOT EXISTS audit_events_action ON audit_events (action, occurred_at);
CREATE INDEX IF NOT EXISTS audit_events_content ON audit_events (content_item_id, content_version);

CREATE TABLE IF NOT EXISTS audit_refs (
    ref_value TEXT NOT NULL,
    ref_kind TEXT NOT NULL,
    partner TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (ref_value, ref_kind, partner, event_id)
);
CREATE INDEX IF NOT EXISTS audit_refs_event ON audit_refs (event_id);
-- the open-items query starts from every reference of one kind (control numbers, files)
CREATE INDEX IF NOT EXISTS audit_refs_kind ON audit_refs (ref_kind, event_id);

CREATE TABLE IF NOT EXISTS audit_dead_letters (
    -- consumer + original topic/partition/offset: a record dead-lettered again by a replay of its
    -- consumer is the same dead letter (a producer's, with no original, is keyed by its own place)
    letter_key TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    partition_no BIGINT NOT NULL,
    record_offset BIGINT NOT NULL,
    consumer TEXT NOT NULL,
    stage TEXT NOT NULL,
    error_class TEXT NOT NULL,
    error_message TEXT NOT NULL,
    failed_at TEXT NOT NULL,
    original_topic TEXT,
    original_partition BIGINT,
    original_offset BIGINT,
    record_key TEXT,
    payload_bytes BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_dead_letters_consumer ON audit_dead_letters (consumer, failed_at);
