//! `gridsync audit ...`: the audit view's questions, answered from the audit
//! store directly (so they work while the audit consumer is down), as JSON.

use std::process::ExitCode;

use anyhow::Context;
use chrono::DateTime;
use clap::{Args, Subcommand};
use gridsync_store::{
    audit::{PageRequest, DEFAULT_OPEN_WINDOW_MS, DEFAULT_PARTNER_WINDOW_MS},
    Store,
};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The audit store the audit consumer writes.
    #[arg(long = "audit-store-url", env = "GRIDSYNC_AUDIT_STORE_URL", default_value = "sqlite://gridsync-audit.db")]
    store_url: String,
    #[command(subcommand)]
    command: AuditCommand,
}

/// Which page of a list: the previous answer's `next`, and how many (at most 500).
#[derive(Debug, Args)]
struct Paging {
    #[arg(long)]
    cursor: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

impl Paging {
    fn request(&self) -> PageRequest {
        PageRequest { cursor: self.cursor.clone(), limit: Some(self.limit) }
    }
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Every event and side effect of one business transaction, oldest first: PO → confirmation →
    /// ship notice → invoice → reminders → payment → 820 → acknowledgement.
    Lineage {
        /// A PO, invoice, shipment or payment number, an outbound file name or an event id.
        reference: String,
        #[arg(long)]
        partner: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Everything received from or sent to one partner in a time range (default: the last 30 days).
    Partner {
        partner: String,
        /// RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Which versions of a content item went out, in which messages and packages, to which partners.
    Content {
        content_item_id: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// What is still open: unacknowledged documents, unread packages, unresolved tasks, overdue
    /// invoices, of what happened in the window.
    Open {
        /// Only what happened since this time (RFC 3339; default: the last 90 days).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Dead letters, newest first, of one consumer or producer or of all.
    DeadLetters {
        #[arg(long)]
        consumer: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One recorded event, whole.
    Event { event_id: String },
    /// How many events and dead letters the store holds.
    Counts,
}

fn millis(name: &str, value: &str) -> anyhow::Result<i64> {
    Ok(DateTime::parse_from_rfc3339(value)
        .with_context(|| format!("--{name} {value:?} is not an RFC 3339 time"))?
        .timestamp_millis())
}

pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&args.store_url).await.context("opening the audit store")?;
    let log = store.audit();
    let now = chrono::Utc::now().timestamp_millis();
    let answer = match args.command {
        AuditCommand::Lineage { reference, partner, paging } => {
            let lineage = log.lineage(&reference, partner.as_deref(), &paging.request()).await?;
            if lineage.total == 0 {
                eprintln!("nothing recorded references {reference:?}");
            }
            serde_json::to_value(lineage)?
        }
        AuditCommand::Partner { partner, from, to, paging } => {
            let to = to.as_deref().map(|t| millis("to", t)).transpose()?.unwrap_or(now + 1);
            let from =
                from.as_deref().map(|t| millis("from", t)).transpose()?.unwrap_or(to - DEFAULT_PARTNER_WINDOW_MS);
            serde_json::json!({
                "partner": partner, "from": from, "to": to,
                "events": log.partner_activity(&partner, from, to, &paging.request()).await?,
            })
        }
        AuditCommand::Content { content_item_id, paging } => serde_json::json!({
            "content_item_id": content_item_id,
            "uses": log.content_uses(&content_item_id, &paging.request()).await?,
            "events": log.content_events(&content_item_id, &paging.request()).await?,
        }),
        AuditCommand::Open { since, limit } => {
            let since =
                since.as_deref().map(|t| millis("since", t)).transpose()?.unwrap_or(now - DEFAULT_OPEN_WINDOW_MS);
            serde_json::to_value(log.open_items(now, since, limit).await?)?
        }
        AuditCommand::DeadLetters { consumer, paging } => {
            serde_json::to_value(log.dead_letters(consumer.as_deref(), &paging.request()).await?)?
        }
        AuditCommand::Counts => {
            let (events, dead_letters) = log.counts().await?;
            serde_json::json!({ "events": events, "dead_letters": dead_letters })
        }
        AuditCommand::Event { event_id } => match log.event(&event_id).await? {
            Some(entry) => serde_json::to_value(entry)?,
            None => {
                eprintln!("no event {event_id} is recorded");
                return Ok(ExitCode::FAILURE);
            }
        },
    };
    outln!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(ExitCode::SUCCESS)
}
