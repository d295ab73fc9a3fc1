-- The processes sharing an Amplience hub's request budget (see src/hub_budget.rs): each
-- heartbeats its row and takes an equal share of the budget among the rows seen lately.

CREATE TABLE IF NOT EXISTS hub_budget_members (
    hub_id TEXT NOT NULL,
    member TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, member)
);
