-- The consumers' side-effect ledger (see src/side_effects.rs), never pruned: it is what makes
-- replays safe; and the latest approved version of each template seen (src/approved_templates.rs).

CREATE TABLE IF NOT EXISTS side_effects (
    effect_key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    claimed_until BIGINT NOT NULL,
    claimed_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    external_id TEXT,
    outcome TEXT,
    performed_at BIGINT,
    reported_at BIGINT
);

CREATE TABLE IF NOT EXISTS approved_templates (
    template_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    seen_at BIGINT NOT NULL
);
