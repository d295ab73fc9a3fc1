//! Flow 2: invoices from Trading Grid into Amplience, payments and disputes
//! from Amplience back to Trading Grid.
//!
//! - PurchaseOrderReceived → remembered, to check its invoices against.
//! - InvoiceReceived → checked ([`crate::check`]); if it adds up, a billing
//!   communication, the invoice on the partner's account status, and its payment
//!   reminders scheduled ([`crate::reminders`]); if not, an invoice-rejected item
//!   for the account team and a DocumentExchangeException (flow 8) with the figures.
//! - RemittanceAdviceReceived (the partner's 820/REMADV) → the invoices it pays
//!   are marked paid; their reminders are cancelled.
//! - PaymentConfirmed → reminders cancelled, an 820/REMADV to the partner
//!   ([`crate::documents`]), the payment on the account status.
//! - DisputeResolved → reminders cancelled, an 812 or CREADV/DEBADV with the
//!   adjusted amount, the adjustment on the account status.
//! - FunctionalAckReceived and Lens status of what was sent → matched to the
//!   payment or dispute and recorded; a rejection or a missing acknowledgement
//!   becomes an exception (flow 8).

use gridsync_amplience::{DeliveryKey, NewContentItem};
use gridsync_core::kafka::Record;
use gridsync_edi::write::PartyId;
use gridsync_flow::{
    clock::Clock, messages, partners::PartnerProfile, Audience, FlowContext, FlowError, FlowHandler, Messages, Raise,
    Send, SideEffect,
};
use gridsync_outbound::OutboundDocuments;
use gridsync_schemas::{
    events::{DisputeResolved, ExceptionKind, InvoiceReceived, OrderLine, PaymentConfirmed, RemittanceAdviceReceived},
    Event, Timestamp,
};
use gridsync_store::{FlowRecords, Timers};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::{
    account::{self, Change, Entry},
    check::{self, money},
    config::BillingConfig,
};

/// Kinds of the flow's own records.
pub(crate) const ORDER: &str = "order";
pub(crate) const INVOICE: &str = "invoice";

/// What the flow remembers of an invoice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct InvoiceRecord {
    pub amount: String,
    pub currency: String,
    pub due_date: String,
    /// `open`, `rejected`, `paid`, `disputed`.
    pub status: String,
    /// Payment reference → amount.
    #[serde(default)]
    pub payments: std::collections::BTreeMap<String, String>,
}

pub struct Billing {
    pub ctx: FlowContext,
    pub messages: Messages,
    pub config: BillingConfig,
    pub documents: OutboundDocuments,
    pub records: FlowRecords,
    pub timers: Timers,
    pub clock: Clock,
    /// gridsync's own interchange id, the sender of what it writes.
    pub own_party: PartyId,
}

/// `<partner>/<reference>`: the key of a partner's invoice, order or document.
pub(crate) fn key(partner: &str, reference: &str) -> String {
    format!("{partner}/{reference}")
}

/// The timers' subject of an invoice: its reminders.
pub(crate) fn invoice_subject(partner: &str, invoice: &str) -> String {
    format!("invoice/{partner}/{invoice}")
}

impl FlowHandler for Billing {
    async fn handle(&self, record: &Record) -> Result<(), FlowError> {
        match &record.event {
            Event::PurchaseOrderReceived(po) => {
                let lines = serde_json::to_string(&po.lines).map_err(FlowError::own_record)?;
                let partner = &po.envelope.trading_partner_id;
                self.records.put(ORDER, &key(partner, &po.po_number), partner, &lines).await?;
                Ok(())
            }
            Event::InvoiceReceived(invoice) => self.invoice(record, invoice).await,
            Event::RemittanceAdviceReceived(advice) => self.remittance(record, advice).await,
            Event::PaymentConfirmed(payment) => self.payment(record, payment).await,
            Event::DisputeResolved(dispute) => self.dispute(record, dispute).await,
            Event::FunctionalAckReceived(ack) => self.acknowledgement(record, ack).await,
            Event::DocumentStatusChanged(status) => self.lens_status(record, status).await,
            _ => Ok(()),
        }
    }
}

impl Billing {
    pub(crate) fn today(&self) -> (String, String) {
        let now = self.clock.now();
        (now.date_naive().to_string(), now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    async fn invoice(&self, record: &Record, invoice: &InvoiceReceived) -> Result<(), FlowError> {
        let partner = self.ctx.partners.get(&invoice.envelope.trading_partner_id)?;
        let order = match &invoice.po_number {
            Some(po) => self
                .records
                .get(ORDER, &key(&partner.id, po))
                .await?
                .map(|text| serde_json::from_str::<Vec<OrderLine>>(&text))
                .transpose()
                .map_err(FlowError::own_record)?,
            None => None,
        };
        let (figures, findings) = check::check(invoice, order.as_deref(), self.config.tolerance);
        let due_date = self.due_date(invoice);
        let mut context = messages::context(record, partner)?;
        context["figures"] = json!(figures);
        context["findings"] = json!(findings);
        context["due_date"] = json!(due_date.to_string());
        context["order_checked"] = json!(order.is_some());
        let invoice_key = key(&partner.id, &invoice.invoice_number);
        if !findings.is_empty() {
            let listed: Vec<String> =
                findings.iter().map(|f| format!("{}: stated {}, expected {}", f.what, f.stated, f.expected)).collect();
            let mut details: std::collections::BTreeMap<String, String> = [
                ("invoice_number".to_owned(), invoice.invoice_number.clone()),
                ("direction".to_owned(), "INBOUND".to_owned()),
            ]
            .into();
            for (n, finding) in listed.iter().enumerate() {
                details.insert(format!("finding_{}", n + 1), finding.clone());
            }
            let reason = format!(
                "invoice {} from {} does not add up: {}",
                invoice.invoice_number,
                partner.name,
                listed.join("; ")
            );
            self.publish_exception(record, ExceptionKind::InvoiceRejected, &reason, details, None).await?;
            let rejected = InvoiceRecord { status: "rejected".into(), ..self.invoice_record(invoice, due_date) };
            self.records
                .put_new(
                    INVOICE,
                    &invoice_key,
                    &partner.id,
                    &serde_json::to_string(&rejected).map_err(FlowError::own_record)?,
                )
                .await?;
            let send = Send {
                action: "invoice-rejected",
                template_key: &self.config.messages.template("invoice-rejected", partner)?,
                audience: Audience::AccountTeam(&self.config.account_team_workflow_state),
                context: &context,
                extra: Map::new(),
                once_per: None,
            };
            self.messages.send(&self.ctx.effects, record, partner, send).await?;
            return Ok(());
        }
        let send = Send {
            action: "billing-communication",
            template_key: &self.config.messages.template("billing-communication", partner)?,
            audience: Audience::Customer,
            context: &context,
            extra: Map::new(),
            once_per: None,
        };
        self.messages.send(&self.ctx.effects, record, partner, send).await?;
        // A payment recorded before its invoice arrived (another topic) has set the record already.
        let open = self.invoice_record(invoice, due_date);
        self.records
            .put_new(INVOICE, &invoice_key, &partner.id, &serde_json::to_string(&open).map_err(FlowError::own_record)?)
            .await?;
        let change = Change::Invoice {
            number: invoice.invoice_number.clone(),
            amount: invoice.total_amount.value(),
            currency: invoice.currency.clone(),
            issued: invoice.invoice_date.value().to_string(),
            due_date: due_date.to_string(),
            po: invoice.po_number.clone(),
        };
        self.account(record, partner, vec![change], None).await?;
        let still_open =
            self.read_invoice(&partner.id, &invoice.invoice_number).await?.is_none_or(|r| r.status == "open");
        if still_open {
            self.schedule_reminders(record, partner, invoice, due_date).await?;
        }
        Ok(())
    }

    fn invoice_record(&self, invoice: &InvoiceReceived, due_date: chrono::NaiveDate) -> InvoiceRecord {
        InvoiceRecord {
            amount: money(invoice.total_amount.value()),
            currency: invoice.currency.clone(),
            due_date: due_date.to_string(),
            status: "open".into(),
            payments: Default::default(),
        }
    }

    /// The stated due date, else the invoice date plus the terms' days (`NET45`), else the default.
    fn due_date(&self, invoice: &InvoiceReceived) -> chrono::NaiveDate {
        if let Some(due) = invoice.due_date {
            return due.value();
        }
        let terms_days = invoice
            .payment_terms
            .as_deref()
            .and_then(|t| t.chars().filter(char::is_ascii_digit).collect::<String>().parse::<i64>().ok())
            .filter(|days| (1..=365).contains(days))
            .unwrap_or(self.config.default_payment_terms_days);
        invoice.invoice_date.value() + chrono::Duration::days(terms_days)
    }

    pub(crate) async fn read_invoice(&self, partner: &str, invoice: &str) -> Result<Option<InvoiceRecord>, FlowError> {
        self.records
            .get(INVOICE, &key(partner, invoice))
            .await?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(FlowError::own_record)
    }

    /// Records a payment of `invoice`; when it is paid in full (or unknown),
    /// its pending reminders are cancelled.
    async fn settle(
        &self,
        partner: &str,
        invoice: &str,
        reference: &str,
        amount: rust_decimal::Decimal,
    ) -> Result<(), FlowError> {
        let mut known = self.read_invoice(partner, invoice).await?.unwrap_or_default();
        known.payments.insert(reference.to_owned(), money(amount));
        let paid: rust_decimal::Decimal =
            known.payments.values().filter_map(|a| a.parse::<rust_decimal::Decimal>().ok()).sum();
        let total = known.amount.parse::<rust_decimal::Decimal>().ok();
        if total.is_none_or(|total| paid >= total) {
            known.status = "paid".into();
            self.timers.cancel(&invoice_subject(partner, invoice), None, &format!("paid ({reference})")).await?;
        }
        self.records
            .put(
                INVOICE,
                &key(partner, invoice),
                partner,
                &serde_json::to_string(&known).map_err(FlowError::own_record)?,
            )
            .await?;
        Ok(())
    }

    async fn remittance(&self, record: &Record, advice: &RemittanceAdviceReceived) -> Result<(), FlowError> {
        let partner = self.ctx.partners.get(&advice.envelope.trading_partner_id)?;
        let at = advice.payment_date.map_or_else(|| self.today().0, |d| d.value().to_string());
        let mut changes = Vec::new();
        for remitted in &advice.remittances {
            self.settle(&partner.id, &remitted.invoice_number, &advice.payment_reference, remitted.amount_paid.value())
                .await?;
            changes.push(Change::Payment {
                invoice: remitted.invoice_number.clone(),
                reference: advice.payment_reference.clone(),
                amount: remitted.amount_paid.value(),
                currency: advice.currency.clone(),
                at: at.clone(),
                source: "trading-grid".into(),
            });
        }
        self.account(record, partner, changes, None).await
    }

    async fn payment(&self, record: &Record, payment: &PaymentConfirmed) -> Result<(), FlowError> {
        let partner = self.ctx.partners.get(&payment.envelope.trading_partner_id)?;
        self.settle(&partner.id, &payment.invoice_number, &payment.payment_reference, payment.amount.value()).await?;
        let sent = self.send_remittance(record, partner, payment).await?;
        let at = payment.paid_at.to_datetime().map(|t| t.to_rfc3339()).unwrap_or_default();
        let mut changes = vec![Change::Payment {
            invoice: payment.invoice_number.clone(),
            reference: payment.payment_reference.clone(),
            amount: payment.amount.value(),
            currency: payment.currency.clone(),
            at,
            source: "amplience".into(),
        }];
        changes.extend(sent.map(|document| Change::Note {
            invoice: payment.invoice_number.clone(),
            on: Entry::Payment,
            reference: payment.payment_reference.clone(),
            field: "document".into(),
            value: document,
        }));
        self.account(record, partner, changes, None).await
    }

    async fn dispute(&self, record: &Record, dispute: &DisputeResolved) -> Result<(), FlowError> {
        use gridsync_schemas::events::DisputeResolution as R;
        let partner = self.ctx.partners.get(&dispute.envelope.trading_partner_id)?;
        let subject = invoice_subject(&partner.id, &dispute.invoice_number);
        self.timers.cancel(&subject, None, &format!("dispute {} resolved", dispute.dispute_id)).await?;
        let stated = dispute.adjusted_amount.map(|a| a.value());
        let open_amount = self
            .read_invoice(&partner.id, &dispute.invoice_number)
            .await?
            .and_then(|r| r.amount.parse::<rust_decimal::Decimal>().ok());
        // Signed: a credit lowers what the invoice asks, a debit raises it.
        let signed = match dispute.resolution {
            R::InvoiceUpheld => rust_decimal::Decimal::ZERO,
            R::CreditIssued => -stated.unwrap_or_default().abs(),
            R::InvoiceAdjusted => stated.unwrap_or_default(),
            R::InvoiceCancelled => -stated.or(open_amount).unwrap_or_default().abs(),
        };
        let sent = self.send_adjustment(record, partner, dispute, signed).await?;
        let mut changes = vec![Change::Adjustment {
            invoice: dispute.invoice_number.clone(),
            reference: dispute.dispute_id.clone(),
            amount: signed,
            resolution: dispute.resolution.as_str().to_owned(),
            at: dispute.resolved_at.to_datetime().map(|t| t.to_rfc3339()).unwrap_or_default(),
        }];
        changes.extend(sent.map(|document| Change::Note {
            invoice: dispute.invoice_number.clone(),
            on: Entry::Adjustment,
            reference: dispute.dispute_id.clone(),
            field: "document".into(),
            value: document,
        }));
        self.account(record, partner, changes, None).await
    }

    /// Applies `changes` to the partner's account-status item, once per
    /// `record` (or per `once_per`).
    pub(crate) async fn account(
        &self,
        record: &Record,
        partner: &PartnerProfile,
        changes: Vec<Change>,
        once_per: Option<String>,
    ) -> Result<(), FlowError> {
        let mut effect = SideEffect::amplience("account-status", partner.contacts.account_team.clone());
        if let Some(subject) = once_per {
            effect = effect.once_per(subject);
        }
        self.ctx
            .effects
            .perform(record, &effect, |_| async move {
                let key = format!("{}/{}", self.config.account_status_key_prefix, partner.id);
                let key = DeliveryKey::parse(&key).map_err(|e| FlowError::Invalid(e.to_string()))?;
                let new = NewContentItem {
                    label: format!("Account status {}", partner.name),
                    schema: self.config.account_status_schema.clone(),
                    delivery_key: Some(key),
                    folder_id: None,
                    locale: None,
                    fields: [
                        ("tradingPartnerId".to_owned(), json!(partner.id)),
                        ("partnerName".to_owned(), json!(partner.name)),
                    ]
                    .into_iter()
                    .collect(),
                };
                let (today, now) = self.today();
                let changes = changes.clone();
                let change = Box::new(move |body: &mut Value| {
                    if let Value::Object(fields) = body {
                        for change in &changes {
                            account::apply(fields, change, &today, &now);
                        }
                    }
                    // Totals and `updatedAt` are rewritten every time.
                    true
                });
                self.ctx.keyed_items.update(&self.messages.repository_id, &new, change).await
            })
            .await?;
        Ok(())
    }

    /// Raises an exception for flow 8 about `record`'s document (or `document`, one gridsync sent).
    pub(crate) async fn publish_exception(
        &self,
        record: &Record,
        kind: ExceptionKind,
        reason: &str,
        details: std::collections::BTreeMap<String, String>,
        document: Option<gridsync_schemas::events::TradingGridDocumentRef>,
    ) -> Result<(), FlowError> {
        let at = Timestamp::from_millis(self.clock.now_ms());
        self.ctx.raise(record, Raise { kind, reason, details, document, at }).await
    }
}
