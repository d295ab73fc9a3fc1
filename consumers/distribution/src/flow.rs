//! Flows 4 and 5: partner content to trading partners, and its receipts back.
//!
//! - PartnerContentApproved (onboarding packs, compliance instructions,
//!   process guides: `on_approval`) and PartnerContentPublished (contracts,
//!   policy notices, trading terms) → one package per target partner (every
//!   partner taking `partner-content` when the content names none) in the
//!   outbound mailbox ([`crate::package`]), its media links fetched as
//!   attachments ([`crate::attachments`]), once per content version and
//!   partner, and the content's distribution-status item in Amplience.
//! - A version older than one already seen (a lagging consumer, a replay) is
//!   not sent; a newer version than the one a partner has is sent as a
//!   revision naming the package it replaces.
//! - DocumentStatusChanged of a package file (Lens) → matched by its name to
//!   the content, version and partner: delivered, read, failed, on the status
//!   item; a partner's rejection sends the content back for re-approval (an
//!   exception naming it, for flow 8); a package that asks for a read
//!   confirmation and has none after `read_window_hours` is an exception too.

use std::{collections::BTreeMap, path::PathBuf};

use gridsync_amplience::{DeliveryClient, DeliveryKey, MediaLink, NewContentItem};
use gridsync_core::kafka::Record;
use gridsync_flow::{
    clock::Clock, effects::Outcome, scheduler, FlowContext, FlowError, FlowHandler, Raise, SideEffect,
};
use gridsync_schemas::{
    events::{DeliveryOutcome, Direction, DocumentStatus, DocumentStatusChanged, ExceptionKind, PartnerContent},
    Event, Timestamp,
};
use gridsync_store::{FlowRecords, Timer, Timers};
use gridsync_trading_grid::mailbox::{Content, OutboundTarget};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use crate::{
    attachments::{Attachment, Attachments},
    config::DistributionConfig,
    currency::{self, Currency, Occasion},
    package,
};

/// Kinds of the flow's records.
const LATEST: &str = "latest";
const SENT: &str = "sent";
const PACKAGE: &str = "package";
const READ_OVERDUE: &str = "read-overdue";

/// The newest version of a content item seen.
#[derive(Debug, Serialize, Deserialize)]
struct Latest {
    version: i64,
}

/// A package sent, by file name.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sent {
    content_item_id: String,
    version: i64,
    partner: String,
    file: String,
    read_required: bool,
    state: String,
}

pub struct Distribution {
    pub ctx: FlowContext,
    pub config: DistributionConfig,
    pub outbound: OutboundTarget,
    pub records: FlowRecords,
    pub timers: Timers,
    pub clock: Clock,
    pub hub_id: Option<String>,
    /// What is published now (see [`crate::currency`]).
    pub delivery: Option<DeliveryClient>,
    /// The media content links to.
    pub attachments: Attachments,
    /// Where packages are built before they go to the mailbox.
    pub spool_dir: PathBuf,
}

/// A content version's attachments, shared by its packages.
struct Parts {
    spool: tempfile::TempDir,
    attachments: Vec<Attachment>,
}

/// Building a package in the spool folder failed: the local disk, worth trying again.
fn spool_error(file: &str, message: String) -> FlowError {
    FlowError::Outbound { transient: true, message: format!("building package {file}: {message}") }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl FlowHandler for Distribution {
    async fn handle(&self, record: &Record) -> Result<(), FlowError> {
        match &record.event {
            Event::PartnerContentApproved(approved)
                if self.config.on_approval.iter().any(|k| k == approved.content.kind.as_str()) =>
            {
                self.distribute(record, &approved.content).await
            }
            Event::PartnerContentPublished(published) => self.distribute(record, &published.content).await,
            Event::DocumentStatusChanged(status) if status.direction == Direction::Outbound => {
                self.receipt(record, status).await
            }
            _ => Ok(()),
        }
    }
}

impl Distribution {
    async fn get<T: for<'de> Deserialize<'de>>(&self, kind: &str, key: &str) -> Result<Option<T>, FlowError> {
        self.records.get(kind, key).await?.map(|t| serde_json::from_str(&t)).transpose().map_err(FlowError::own_record)
    }

    async fn put<T: Serialize>(&self, kind: &str, key: &str, subject: &str, value: &T) -> Result<(), FlowError> {
        self.records.put(kind, key, subject, &serde_json::to_string(value).map_err(FlowError::own_record)?).await?;
        Ok(())
    }

    async fn distribute(&self, record: &Record, content: &PartnerContent) -> Result<(), FlowError> {
        let id = &content.content_item_id;
        if let Some(latest) = self.get::<Latest>(LATEST, id).await? {
            if latest.version > content.version {
                tracing::info!(
                    content = id,
                    version = content.version,
                    latest = latest.version,
                    "superseded by a newer version; not sent"
                );
                return Ok(());
            }
        }
        self.put(LATEST, id, id, &Latest { version: content.version }).await?;
        // Every named partner must be known before anything goes out (else dead-lettered, naming it).
        let partners = if content.target_partner_ids.is_empty() {
            self.ctx.partners.all().filter(|p| p.documents.iter().any(|d| d == "partner-content")).collect::<Vec<_>>()
        } else {
            content.target_partner_ids.iter().map(|p| self.ctx.partners.get(p)).collect::<Result<Vec<_>, _>>()?
        };
        let partners: Vec<_> = partners
            .into_iter()
            .filter(|partner| {
                let takes = partner.documents.iter().any(|d| d == "partner-content");
                if !takes {
                    tracing::info!(
                        partner = partner.id,
                        content = id,
                        "the partner's profile does not take partner content"
                    );
                }
                takes
            })
            .collect();
        // Amplience is asked only for a version some partner has not had yet: a replay of one
        // already sent goes on to find it done, whatever became of the content since.
        let mut had = Vec::new();
        for partner in &partners {
            had.push((partner.id.clone(), self.get::<Sent>(SENT, &format!("{id}/{}", partner.id)).await?));
        }
        let unsent: Vec<String> = had
            .iter()
            .filter(|(_, previous)| previous.as_ref().is_none_or(|p| p.version < content.version))
            .map(|(partner, _)| partner.clone())
            .collect();
        if let (false, Some(occasion)) = (unsent.is_empty(), Occasion::of(&record.event)) {
            let delivery = self.delivery.as_ref();
            match currency::of(&self.ctx.amplience, delivery, &self.config.withdrawn_states, &occasion, content).await?
            {
                Currency::Current => {}
                Currency::Superseded { by } => {
                    tracing::info!(content = id, version = content.version, by, "superseded in Amplience; not sent");
                    return Ok(());
                }
                Currency::Withdrawn { why } => {
                    tracing::info!(content = id, version = content.version, why, "withdrawn in Amplience; not sent");
                    let at = rfc3339(self.clock.now_ms());
                    let changes = unsent
                        .into_iter()
                        .map(|p| {
                            (p, json!({ "version": content.version, "state": "withdrawn", "reason": why, "at": at }))
                        })
                        .collect();
                    return self.status(record, content, changes).await;
                }
            }
        }
        // Attachments are fetched once for all the partners, and only if a package is built.
        let parts = OnceCell::new();
        let mut sent = Vec::new();
        for (partner, previous) in had {
            if let Some(package) = self.send(record, content, &partner, previous, &parts).await? {
                sent.push(package);
            }
        }
        let changes: Vec<(String, Value)> = sent
            .iter()
            .map(|s| (s.partner.clone(), json!({ "version": s.version, "file": s.file, "state": "sent", "at": rfc3339(self.clock.now_ms()) })))
            .collect();
        self.status(record, content, changes).await
    }

    /// Writes the package of `content` for `partner`, who had `previous`, once; `None` when a
    /// newer version went out already.
    async fn send(
        &self,
        record: &Record,
        content: &PartnerContent,
        partner: &str,
        previous: Option<Sent>,
        parts: &OnceCell<Parts>,
    ) -> Result<Option<Sent>, FlowError> {
        let id = &content.content_item_id;
        if previous.as_ref().is_some_and(|p| p.version > content.version) {
            return Ok(None);
        }
        let replaces = previous.filter(|p| p.version < content.version).map(|p| (p.version, p.file));
        let file = package::file_name(partner, id, content.version);
        let sent = Sent {
            content_item_id: id.clone(),
            version: content.version,
            partner: partner.to_owned(),
            file: file.clone(),
            read_required: content.requires_read_confirmation,
            state: "sent".into(),
        };
        let effect = SideEffect::trading_grid("partner-package", Some(partner.to_owned()))
            .once_per(format!("package/{partner}/{id}/v{}", content.version));
        self.ctx
            .effects
            .perform(record, &effect, |_| async {
                let parts = parts.get_or_try_init(|| self.fetch_parts(content)).await?;
                let zip = self.build(content, partner, replaces, parts, &file).await?;
                // Known by name before the file exists: its receipt may come back at once.
                self.records
                    .put_new(PACKAGE, &file, id, &serde_json::to_string(&sent).map_err(FlowError::own_record)?)
                    .await?;
                if content.requires_read_confirmation {
                    let window = self.config.read_window_hours.saturating_mul(3_600_000);
                    let payload = json!({ "source": scheduler::encode_source(&record.event)?, "file": file });
                    self.timers
                        .schedule(&Timer {
                            key: format!("read/{file}"),
                            kind: READ_OVERDUE.into(),
                            subject: format!("package/{file}"),
                            due_at_ms: self.clock.now_ms().saturating_add(window),
                            payload: payload.to_string(),
                        })
                        .await?;
                }
                let written = self
                    .outbound
                    .write_content(&file, Content::File(&zip))
                    .await
                    .map_err(|e| FlowError::Outbound { transient: true, message: e.to_string() })?;
                // Only the attachments stay until the content's last package is written.
                let _ = tokio::fs::remove_file(&zip).await;
                Ok(Outcome {
                    external_id: file.clone(),
                    outcome: if written.created { DeliveryOutcome::Created } else { DeliveryOutcome::AlreadyDone },
                    content_item_id: Some(id.clone()),
                    content_version: Some(content.version),
                    amplience_item: None,
                })
            })
            .await?;
        self.put(SENT, &format!("{id}/{partner}"), id, &sent).await?;
        Ok(Some(sent))
    }

    /// The content's attachments, fetched into a fresh spool folder (removed when dropped,
    /// whatever happens).
    async fn fetch_parts(&self, content: &PartnerContent) -> Result<Parts, FlowError> {
        let id = &content.content_item_id;
        let dir = self.spool_dir.clone();
        let spool =
            tokio::task::spawn_blocking(move || tempfile::Builder::new().prefix(".gridsync-package-").tempdir_in(dir))
                .await
                .map_err(|e| spool_error(id, e.to_string()))?
                .map_err(|e| spool_error(id, e.to_string()))?;
        let body = content.body_json.as_deref().unwrap_or("{}");
        let links = MediaLink::find_all(&serde_json::from_str(body).unwrap_or(Value::Null));
        let attachments = self.attachments.fetch_all(&links, spool.path()).await?;
        Ok(Parts { spool, attachments })
    }

    /// Builds the package of `content` for `partner` beside its attachments; returns its path.
    async fn build(
        &self,
        content: &PartnerContent,
        partner: &str,
        replaces: Option<(i64, String)>,
        parts: &Parts,
        file: &str,
    ) -> Result<PathBuf, FlowError> {
        let package = package::Package {
            content_item_id: content.content_item_id.clone(),
            version: content.version,
            kind: content.kind.as_str().to_owned(),
            title: content.title.clone(),
            locale: content.locale.clone(),
            partner: partner.to_owned(),
            read_confirmation_required: content.requires_read_confirmation,
            replaces,
            body: content.body_json.clone().unwrap_or_else(|| "{}".into()),
        };
        let attachments = parts.attachments.clone();
        let path = parts.spool.path().join(file);
        let out = path.clone();
        let name = file.to_owned();
        tokio::task::spawn_blocking(move || {
            let zip = std::fs::File::create(&out)?;
            let zip = package::write(&package, &attachments, std::io::BufWriter::new(zip))?;
            zip.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
            Ok::<_, zip::result::ZipError>(())
        })
        .await
        .map_err(|e| spool_error(&name, e.to_string()))?
        .map_err(|e| spool_error(&name, e.to_string()))?;
        Ok(path)
    }

    /// A package's status from Lens (matched by its file name).
    async fn receipt(&self, record: &Record, status: &DocumentStatusChanged) -> Result<(), FlowError> {
        let file = &status.envelope.business_key;
        let Some(mut sent) = self.get::<Sent>(PACKAGE, file).await? else { return Ok(()) };
        let state = match status.status {
            DocumentStatus::Delivered | DocumentStatus::DeliveryReceipt => "delivered",
            DocumentStatus::ReadConfirmed => "read",
            DocumentStatus::DeliveryFailed | DocumentStatus::ValidationError | DocumentStatus::OnHold => "failed",
            _ => return Ok(()),
        };
        if state == "read" {
            self.timers.cancel(&format!("package/{file}"), None, "read confirmed").await?;
        }
        if status.status == DocumentStatus::ValidationError {
            // The partner refused it: the content goes back for re-approval (flow 8).
            let reason = format!(
                "{} refused package {file} (content {} v{}): {}",
                sent.partner,
                sent.content_item_id,
                sent.version,
                status.error_message.as_deref().unwrap_or("no reason given")
            );
            let details = BTreeMap::from([
                ("content_item_id".to_owned(), sent.content_item_id.clone()),
                ("version".to_owned(), sent.version.to_string()),
                ("package".to_owned(), file.clone()),
            ]);
            let at = Timestamp::from_millis(self.clock.now_ms());
            self.ctx
                .raise(
                    record,
                    Raise { kind: ExceptionKind::ValidationError, reason: &reason, details, document: None, at },
                )
                .await?;
        }
        // A read package stays read, whatever Lens says after.
        if sent.state != "read" {
            sent.state = state.to_owned();
        }
        self.put(PACKAGE, file, &sent.content_item_id, &sent).await?;
        let change = json!({ "version": sent.version, "file": file, "state": sent.state, "at": rfc3339(status.status_at.millis()) });
        self.status_of(record, &sent.content_item_id, None, vec![(sent.partner.clone(), change)], None).await
    }

    async fn status(
        &self,
        record: &Record,
        content: &PartnerContent,
        changes: Vec<(String, Value)>,
    ) -> Result<(), FlowError> {
        if changes.is_empty() {
            return Ok(());
        }
        let about = json!({ "title": content.title, "kind": content.kind.as_str() });
        self.status_of(record, &content.content_item_id, Some(about), changes, None).await
    }

    /// Sets each `(partner, state)` on the content's distribution-status item, once per record
    /// (or per `once_per`).
    async fn status_of(
        &self,
        record: &Record,
        content_item_id: &str,
        about: Option<Value>,
        changes: Vec<(String, Value)>,
        once_per: Option<String>,
    ) -> Result<(), FlowError> {
        let mut effect = SideEffect::amplience("distribution-status", None);
        if let Some(subject) = once_per {
            effect = effect.once_per(subject);
        }
        self.ctx
            .effects
            .perform(record, &effect, |_| async {
                let key = format!("{}/{content_item_id}", self.config.status_key_prefix);
                let key = DeliveryKey::parse(&key).map_err(|e| FlowError::Invalid(e.to_string()))?;
                let new = NewContentItem {
                    label: format!("Distribution of {content_item_id}"),
                    schema: self.config.status_schema.clone(),
                    delivery_key: Some(key),
                    folder_id: None,
                    locale: None,
                    fields: [("contentItemId".to_owned(), json!(content_item_id)), ("partners".to_owned(), json!({}))]
                        .into_iter()
                        .collect(),
                };
                let (about, changes) = (about.clone(), changes.clone());
                let change = Box::new(move |body: &mut Value| set_states(body, about.as_ref(), &changes));
                let mut outcome = self.ctx.keyed_items.update(&self.config.repository_id, &new, change).await?;
                outcome.content_item_id = Some(content_item_id.to_owned());
                Ok(outcome)
            })
            .await?;
        Ok(())
    }
}

impl scheduler::Fire for Distribution {
    fn kinds(&self) -> &'static [&'static str] {
        &[READ_OVERDUE]
    }

    /// A package's read window ran out: an exception unless it was read meanwhile.
    async fn fire(&self, timer: &Timer) -> Result<(), FlowError> {
        let payload: Value = serde_json::from_str(&timer.payload).map_err(FlowError::own_record)?;
        let record = scheduler::decode_source(payload["source"].as_str().unwrap_or_default())?;
        let file = payload["file"].as_str().unwrap_or_default();
        let Some(mut sent) = self.get::<Sent>(PACKAGE, file).await? else { return Ok(()) };
        if sent.state == "read" {
            return Ok(());
        }
        let reason = format!(
            "package {file} (content {} v{}) sent to {} has no read confirmation after {} hours",
            sent.content_item_id, sent.version, sent.partner, self.config.read_window_hours
        );
        let details = BTreeMap::from([
            ("content".to_owned(), sent.content_item_id.clone()),
            ("version".to_owned(), sent.version.to_string()),
            ("package".to_owned(), file.to_owned()),
        ]);
        let at = Timestamp::from_millis(self.clock.now_ms());
        self.ctx
            .raise(&record, Raise { kind: ExceptionKind::Other, reason: &reason, details, document: None, at })
            .await?;
        sent.state = "read-overdue".into();
        self.put(PACKAGE, file, &sent.content_item_id, &sent).await?;
        let change = json!({ "version": sent.version, "file": file, "state": "read-overdue", "at": rfc3339(self.clock.now_ms()) });
        self.status_of(
            &record,
            &sent.content_item_id,
            None,
            vec![(sent.partner.clone(), change)],
            Some(timer.key.clone()),
        )
        .await
    }
}

/// Sets each `(partner, state)` of `changes` (and the content's `about`) on a distribution-status
/// body; whether any of it was not there yet (a state seen again is: nothing to save). A newer
/// version's state is not overwritten by an older one's.
fn set_states(body: &mut Value, about: Option<&Value>, changes: &[(String, Value)]) -> bool {
    let Value::Object(fields) = body else { return false };
    let mut changed = false;
    let mut set = |object: &mut Map<String, Value>, key: &String, value: &Value| {
        if object.get(key) != Some(value) {
            object.insert(key.clone(), value.clone());
            changed = true;
        }
    };
    if let Some(Value::Object(about)) = about {
        for (key, value) in about {
            set(fields, key, value);
        }
    }
    if let Value::Object(partners) = fields.entry("partners").or_insert_with(|| json!({})) {
        for (partner, change) in changes {
            let older = partners
                .get(partner)
                .and_then(|p| p["version"].as_i64())
                .is_some_and(|v| change["version"].as_i64().is_some_and(|c| c < v));
            if !older {
                set(partners, partner, change);
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_changes_the_status_once_and_an_older_version_never() {
        let about = json!({ "title": "Welcome pack", "kind": "onboarding" });
        let sent = |version: i64, state: &str| vec![("ACME".to_owned(), json!({ "version": version, "state": state }))];
        let mut body = json!({ "contentItemId": "c-1", "partners": {} });

        assert!(set_states(&mut body, Some(&about), &sent(2, "sent")));
        assert_eq!(body["partners"]["ACME"]["state"], "sent");
        assert_eq!(body["title"], "Welcome pack");
        assert!(!set_states(&mut body, Some(&about), &sent(2, "sent")), "seen again: nothing to save");
        assert!(!set_states(&mut body, None, &sent(1, "read")), "an older version's state");
        assert_eq!(body["partners"]["ACME"]["state"], "sent");
        assert!(set_states(&mut body, None, &sent(2, "read")));
        assert_eq!(body["partners"]["ACME"]["state"], "read");
    }
}
