//! gridsync's durable state, on SQLite (the embedded default: a file beside
//! the binary) or PostgreSQL (shared by replicas): which webhook deliveries
//! were already published, the control numbers of outbound EDI and what each
//! outbound interchange was numbered, events already published, and pollers'
//! watermarks and last-seen states.
//!
//! One SQL dialect serves both: `$n` placeholders (`?` in SQLite's batches, see
//! [`Backend::parameters`]), `ON CONFLICT`, integers for time (milliseconds since the epoch).

mod approved_templates;
pub mod audit;
mod control_numbers;
mod flow_records;
mod hub_budget;
mod outbound;
mod published;
mod received_controls;
mod side_effects;
mod source_states;
mod timers;
mod watermarks;
mod webhooks;

use std::time::Duration;

use gridsync_retry::{retry_bounded, Backoff, Verdict};

use sqlx::{
    any::{AnyPoolOptions, AnyRow},
    AnyPool,
};

pub use approved_templates::{ApprovedTemplate, ApprovedTemplates};
pub use control_numbers::{ControlNumbers, MAX_CONTROL_NUMBER};
pub use flow_records::FlowRecords;
pub use hub_budget::HubBudget;
pub use outbound::{OutboundInterchanges, Reservation};
pub use published::PublishedEvents;
pub use received_controls::ReceivedControls;
pub use side_effects::{Claim, Performed, SideEffects};
pub use source_states::SourceStates;
pub use timers::{Timer, TimerState, Timers};
pub use watermarks::Watermarks;
pub use webhooks::{HandledDelivery, WebhookDeliveries};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL {0:?} is neither sqlite:// nor postgres://")]
    UnsupportedUrl(String),
    #[error("connecting to the {backend} store: {source}")]
    Connect {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrating the {backend} store: {source}")]
    Migrate {
        backend: Backend,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("the {what} {key:?} vanished right after it was written")]
    Vanished { what: &'static str, key: String },
    #[error("{what}: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    fn query(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { what, source }
    }
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

impl Backend {
    /// `count` bind parameters, the first numbered `first`, comma-separated: `?` on SQLite,
    /// `$first, ...` on PostgreSQL. SQLite's anonymous parameters bind by position; a named one
    /// (`$n`) is found by a linear search of the statement's names for every value bound, so a
    /// statement of many `$n` costs the square of its parameters to bind (it took most of a
    /// 5,000-document file's store time, measured with perf).
    pub(crate) fn parameters(self, first: usize, count: usize) -> String {
        let each: Vec<String> = match self {
            Backend::Sqlite => vec!["?".to_owned(); count],
            Backend::Postgres => (first..first + count).map(|n| format!("${n}")).collect(),
        };
        each.join(", ")
    }

    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }
}

/// Each SQLite connection's page cache, at most: 32 MiB (negative: in KiB).
const SQLITE_CACHE_SIZE: &str = "PRAGMA cache_size = -32768";

/// Two processes opening a fresh SQLite file at once may both try a migration: the loser tries
/// again a moment later and finds it applied (six attempts over about two seconds).
const MIGRATION_RETRY: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1)).giving_up_after(6);

/// A connection pool to the store, its tables ready.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `url` (`sqlite://path/to/file.db` — created if missing — or
    /// `postgres://user@host/db`) and creates the tables that are missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let backend = Backend::of_url(url)?;
        sqlx::any::install_default_drivers();
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Several connections (and processes) share the file: wait for
                        // a lock instead of failing, and let readers run beside a writer.
                        sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        // The default page cache (2 MiB) is soon smaller than the indexes the
                        // producers look events up in (the published events' random ids above
                        // all): each look-up or insert would read pages back from the OS
                        // (measured when every event was written there: a fifth of
                        // tg-producer's store time).
                        sqlx::query(SQLITE_CACHE_SIZE).execute(&mut *conn).await?;
                        // A many-row insert keeps a statement journal to undo itself; in a
                        // temporary file that is a write per page it touches.
                        sqlx::query("PRAGMA temp_store = MEMORY").execute(&mut *conn).await?;
                        // The write-ahead log is copied back into the file every 8,192 pages (32 MiB)
                        // rather than SQLite's 1,000: an index page changed by many commits is
                        // copied once, not each time (the audit store recorded a backlog ~25% faster).
                        sqlx::query("PRAGMA wal_autocheckpoint = 8192").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|source| StoreError::Connect { backend, source })?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations in `store/migrations` that this database has not
    /// had yet (tracked in `_sqlx_migrations`; on PostgreSQL under an advisory
    /// lock, so replicas starting together take turns). Every statement is
    /// valid on both backends.
    /// Two processes opening a fresh SQLite file at once (tg-producer and the billing consumer
    /// share one for control numbers) may both try a migration: the loser finds it applied when
    /// it tries again a moment later.
    async fn migrate(&self) -> Result<(), StoreError> {
        let migrate = || sqlx::migrate!("./migrations").run(&self.pool);
        let again = |e: &sqlx::migrate::MigrateError, attempt| {
            tracing::debug!(error = %e, attempt, "migrating the store failed; trying again");
            Verdict::RETRY
        };
        retry_bounded(&MIGRATION_RETRY, migrate, again)
            .await
            .map_err(|source| StoreError::Migrate { backend: self.backend, source })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs one statement as given (operators' and tests' DDL, never with input).
    pub async fn execute_unchecked(&self, statement: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(statement).execute(&self.pool).await.map_err(StoreError::query("running a statement"))?;
        Ok(())
    }

    /// Outbound interchange control numbers.
    pub fn control_numbers(&self) -> ControlNumbers {
        ControlNumbers::new(self.pool.clone())
    }

    /// What each outbound interchange was numbered.
    pub fn outbound_interchanges(&self) -> OutboundInterchanges {
        OutboundInterchanges::new(self.pool.clone())
    }

    /// Forgets what is older than `age`: published events, webhook deliveries
    /// and polled items' states (an input older than that, seen again, is
    /// treated as new). Control numbers and outbound reservations are kept.
    /// Returns the rows removed.
    pub async fn prune(&self, age: Duration) -> Result<u64, StoreError> {
        let cutoff = now_millis().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let mut removed = 0;
        for statement in [
            "DELETE FROM published_events WHERE published_at < $1",
            "DELETE FROM webhook_deliveries WHERE recorded_at < $1",
            "DELETE FROM source_states WHERE updated_at < $1",
            "DELETE FROM received_controls WHERE seen_at < $1",
        ] {
            let done = sqlx::query(statement)
                .bind(cutoff)
                .execute(&self.pool)
                .await
                .map_err(StoreError::query("pruning old records"))?;
            removed += done.rows_affected();
        }
        Ok(removed)
    }

    /// Prunes records older than `retention` now and every hour, until
    /// `shutdown` completes, so the store does not grow without bound.
    pub async fn prune_hourly(&self, retention: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.prune(retention).await {
                Ok(removed) => tracing::debug!(removed, "pruned the store"),
                Err(e) => tracing::warn!(error = %e, "pruning the store failed; trying again in an hour"),
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    }

    /// Events already acknowledged by Kafka.
    pub fn published_events(&self) -> PublishedEvents {
        PublishedEvents::new(self.pool.clone(), self.backend)
    }

    /// The document last received under each set of control numbers.
    pub fn received_controls(&self) -> ReceivedControls {
        ReceivedControls::new(self.pool.clone(), self.backend)
    }

    /// The last state seen of each item of the polled `source`.
    pub fn source_states(&self, source: &str) -> SourceStates {
        SourceStates::new(self.pool.clone(), source)
    }

    /// Pollers' watermarks.
    pub fn watermarks(&self) -> Watermarks {
        Watermarks::new(self.pool.clone())
    }

    /// The side-effect ledger of the consumers.
    pub fn side_effects(&self) -> SideEffects {
        SideEffects::new(self.pool.clone())
    }

    /// The processes sharing an Amplience hub's request budget.
    pub fn hub_budget(&self) -> HubBudget {
        HubBudget::new(self.pool.clone())
    }

    /// The latest approved version of each template seen.
    pub fn approved_templates(&self) -> ApprovedTemplates {
        ApprovedTemplates::new(self.pool.clone())
    }

    /// The durable timers of `flow`.
    pub fn timers(&self, flow: &str) -> Timers {
        Timers::new(self.pool.clone(), flow)
    }

    /// What `flow` remembers between events.
    pub fn flow_records(&self, flow: &str) -> FlowRecords {
        FlowRecords::new(self.pool.clone(), flow)
    }

    /// The audit store's tables (flow 7).
    pub fn audit(&self) -> audit::AuditLog {
        audit::AuditLog::new(self.pool.clone(), self.backend)
    }

    /// Webhook deliveries already turned into events.
    pub fn webhook_deliveries(&self) -> WebhookDeliveries {
        WebhookDeliveries::new(self.pool.clone())
    }
}

/// Keys per lookup of [`select_in`].
const KEYS_PER_LOOKUP: usize = 500;

/// The rows of `{select} IN (..)` for every one of `keys`, [`KEYS_PER_LOOKUP`] keys a query.
async fn select_in(
    (pool, backend): (&AnyPool, Backend),
    what: &'static str,
    select: &str,
    keys: &[String],
) -> Result<Vec<AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for chunk in keys.chunks(KEYS_PER_LOOKUP) {
        let sql = format!("{select} IN ({})", backend.parameters(1, chunk.len()));
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = query.bind(key);
        }
        rows.extend(query.fetch_all(pool).await.map_err(StoreError::query(what))?);
    }
    Ok(rows)
}

/// Rows per multi-row INSERT of [`insert_text_pairs`] (three parameters each).
const ROWS_PER_INSERT: usize = 200;

/// Inserts `(a, b, now)` rows with multi-row statements (`{head} VALUES (..), (..) {tail}`), in
/// one transaction: one round trip per [`ROWS_PER_INSERT`] rows instead of one per row. The
/// rows must not repeat a key when `tail` updates on conflict (PostgreSQL refuses to update a
/// row twice in one statement).
async fn insert_text_pairs(
    (pool, backend): (&AnyPool, Backend),
    what: &'static str,
    statement: (&str, &str),
    rows: &[(&str, &str)],
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(StoreError::query(what))?;
    insert_text_pairs_in(&mut tx, backend, what, statement, rows, now).await?;
    tx.commit().await.map_err(StoreError::query(what))
}

/// [`insert_text_pairs`] within the caller's transaction.
async fn insert_text_pairs_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    what: &'static str,
    (head, tail): (&str, &str),
    rows: &[(&str, &str)],
    now: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len()).map(|n| format!("({})", backend.parameters(3 * n + 1, 3))).collect();
        let sql = format!("{head} VALUES {} {tail}", values.join(", "));
        let mut query = sqlx::query(&sql);
        for (a, b) in chunk {
            query = query.bind(*a).bind(*b).bind(now);
        }
        query.execute(&mut **tx).await.map_err(StoreError::query(what))?;
    }
    Ok(())
}

/// Milliseconds since the epoch, now.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
