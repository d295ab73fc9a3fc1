-- The audit store's retention (audit-consumer --retention-days): events and dead letters older
-- than the retention are deleted, by when gridsync learned of them; these indexes find them.
CREATE INDEX IF NOT EXISTS audit_events_seen ON audit_events (seen_at);
CREATE INDEX IF NOT EXISTS audit_dead_letters_recorded ON audit_dead_letters (recorded_at);
