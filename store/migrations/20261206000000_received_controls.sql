-- Which document each partner's control numbers were last seen on (its event id, which carries
-- the document's content digest): a different document under the same numbers is a partner
-- reusing them, reported as an exception and still published under its own id.
CREATE TABLE received_controls (
    control_key TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    seen_at BIGINT NOT NULL
);
CREATE INDEX received_controls_seen_at ON received_controls (seen_at);
