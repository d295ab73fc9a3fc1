-- What a side effect's report names besides its target id (the content version it used, the
-- Amplience item it made), kept so that a report made late, by the next owner after its
-- performer died, is as complete as the performer's own.
ALTER TABLE side_effects ADD COLUMN details TEXT;
