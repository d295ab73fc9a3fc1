-- Durable timers of the flows (payment reminders, acknowledgements and read confirmations
-- overdue; see src/timers.rs), and the flows' own records (what a flow must remember between
-- events: purchase orders seen, documents sent, open tasks; see src/flow_records.rs).

CREATE TABLE IF NOT EXISTS flow_timers (
    timer_key TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    claimed_until BIGINT NOT NULL,
    settled_at BIGINT,
    settled_because TEXT
);
CREATE INDEX IF NOT EXISTS flow_timers_due ON flow_timers (flow, state, due_at);
CREATE INDEX IF NOT EXISTS flow_timers_subject ON flow_timers (flow, subject);

CREATE TABLE IF NOT EXISTS flow_records (
    flow TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_key TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (flow, kind, record_key)
);
CREATE INDEX IF NOT EXISTS flow_records_subject ON flow_records (flow, kind, subject);
