-- The producers' state: webhook deliveries handled, outbound control numbers and reservations,
-- events published, pollers' states and watermarks. IF NOT EXISTS: stores made before migrations
-- were tracked already have these tables.

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS control_numbers (
    partner TEXT NOT NULL,
    standard TEXT NOT NULL,
    last_used BIGINT NOT NULL,
    PRIMARY KEY (partner, standard)
);

CREATE TABLE IF NOT EXISTS outbound_interchanges (
    document_key TEXT PRIMARY KEY,
    partner TEXT NOT NULL,
    standard TEXT NOT NULL,
    control_number BIGINT NOT NULL,
    prepared_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS published_events (
    event_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    published_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS source_states (
    source TEXT NOT NULL,
    item TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (source, item)
);

CREATE TABLE IF NOT EXISTS watermarks (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
