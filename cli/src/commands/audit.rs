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
    /// The audit store the audit consumer writes. Without it: the quick start's
    /// (`.local/audit.db`), else audit-consumer's default (`gridsync-audit.db`), whichever exists;
    /// a store is never created by a question.
    #[arg(long = "audit-store-url", env = "GRIDSYNC_AUDIT_STORE_URL")]
    store_url: Option<String>,
    #[command(subcommand)]
    command: AuditCommand,
}

/// Where a store is looked for when none is given, in order: the quick start's, then the
/// audit consumer's default.
const LOOKED_AT: [&str; 2] = [".local/audit.db", "gridsync-audit.db"];

/// The store to answer from: the one given, or the first of [`LOOKED_AT`] that exists. A SQLite
/// file that does not exist is an error naming where it was looked for, never an empty store.
fn store_url(given: Option<String>) -> anyhow::Result<String> {
    let url = match given {
        Some(url) => url,
        None => match LOOKED_AT.iter().find(|path| std::path::Path::new(path).is_file()) {
            Some(path) => format!("sqlite://{path}"),
            None => anyhow::bail!(
                "no audit store here: looked for {} in {}; give --audit-store-url (GRIDSYNC_AUDIT_STORE_URL), \
                 the URL the audit consumer writes to",
                LOOKED_AT.join(" and "),
                std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| ".".into())
            ),
        },
    };
    if let Some(path) = url.strip_prefix("sqlite://") {
        let file = path.split('?').next().unwrap_or(path);
        anyhow::ensure!(
            std::path::Path::new(file).is_file(),
            "no audit store at {file}: is it the file the audit consumer writes (its --audit-store-url)?"
        );
    }
    Ok(url)
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
    #[command(flatten)]
    Question(Question),
    /// Makes an API token for the audit view and adds its hash to the tokens file (created if
    /// missing, readable by its owner only); prints the token, which is kept nowhere else.
    Token {
        /// What the token is for (a person, a program); named in the view's logs.
        #[arg(long)]
        name: String,
        /// Only what concerns these partners (repeat; default: every partner).
        #[arg(long = "partner")]
        partners: Vec<String>,
        /// The file the audit consumer reads (its --tokens-file).
        #[arg(long, env = "GRIDSYNC_AUDIT_TOKENS_FILE")]
        tokens_file: std::path::PathBuf,
    },
}

/// What the audit store is asked.
#[derive(Debug, Subcommand)]
enum Question {
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

/// Adds a new token named `name` to `file`; returns the token.
fn new_token(file: &std::path::Path, name: &str, partners: &[String]) -> anyhow::Result<String> {
    use std::io::Write;
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)),
        "--name {name:?}: letters, digits and - _ . @ only"
    );
    let token = gridsync_audit::access::new_token();
    let mut entry =
        format!("\n[[token]]\nname = \"{name}\"\nsha256 = \"{}\"\n", gridsync_audit::access::token_hash(&token));
    if !partners.is_empty() {
        let quoted: Vec<String> = partners.iter().map(|p| format!("{p:?}")).collect();
        entry.push_str(&format!("partners = [{}]\n", quoted.join(", ")));
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(file).with_context(|| format!("opening {}", file.display()))?;
    out.write_all(entry.as_bytes()).with_context(|| format!("writing {}", file.display()))?;
    Ok(token)
}

fn millis(name: &str, value: &str) -> anyhow::Result<i64> {
    Ok(DateTime::parse_from_rfc3339(value)
        .with_context(|| format!("--{name} {value:?} is not an RFC 3339 time"))?
        .timestamp_millis())
}

pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let question = match args.command {
        AuditCommand::Token { name, partners, tokens_file } => {
            let token = new_token(&tokens_file, &name, &partners)?;
            eprintln!("token {name:?} added to {} (only its hash); keep it, it is shown once:", tokens_file.display());
            outln!("{token}");
            return Ok(ExitCode::SUCCESS);
        }
        AuditCommand::Question(question) => question,
    };
    let store = Store::connect(&store_url(args.store_url)?).await.context("opening the audit store")?;
    let log = store.audit();
    let now = chrono::Utc::now().timestamp_millis();
    let answer = match question {
        Question::Lineage { reference, partner, paging } => {
            let mut lineage = log.lineage(&reference, partner.as_deref(), &paging.request()).await?;
            // With their references, in causal order, as the audit view answers.
            log.with_refs(&mut lineage.events.items).await?;
            let items = std::mem::take(&mut lineage.events.items);
            lineage.events.items = gridsync_audit::order::causal(items).into_iter().map(|p| p.entry).collect();
            if lineage.total == 0 {
                eprintln!("nothing recorded references {reference:?}");
            }
            serde_json::to_value(lineage)?
        }
        Question::Partner { partner, from, to, paging } => {
            let to = to.as_deref().map(|t| millis("to", t)).transpose()?.unwrap_or(now + 1);
            let from =
                from.as_deref().map(|t| millis("from", t)).transpose()?.unwrap_or(to - DEFAULT_PARTNER_WINDOW_MS);
            serde_json::json!({
                "partner": partner, "from": from, "to": to,
                "events": log.partner_activity(&partner, from, to, &paging.request()).await?,
            })
        }
        Question::Content { content_item_id, paging } => serde_json::json!({
            "content_item_id": content_item_id,
            "uses": log.content_uses(&content_item_id, &paging.request()).await?,
            "events": log.content_events(&content_item_id, &paging.request()).await?,
        }),
        Question::Open { since, limit } => {
            let since =
                since.as_deref().map(|t| millis("since", t)).transpose()?.unwrap_or(now - DEFAULT_OPEN_WINDOW_MS);
            serde_json::to_value(log.open_items(now, since, limit).await?)?
        }
        Question::DeadLetters { consumer, paging } => {
            serde_json::to_value(log.dead_letters(consumer.as_deref(), &paging.request()).await?)?
        }
        Question::Counts => {
            let (events, dead_letters) = log.counts().await?;
            serde_json::json!({ "events": events, "dead_letters": dead_letters })
        }
        Question::Event { event_id } => match log.event(&event_id).await? {
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
