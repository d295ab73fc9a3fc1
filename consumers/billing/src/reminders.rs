//! Payment reminders: durable timers at the configured offsets from an
//! invoice's due date, each firing once (a reminder item from its template),
//! cancelled when the invoice is paid or its dispute resolved. A reminder
//! whose day had passed when the invoice arrived is not sent late. One that a
//! consumer began sending before it died is finished, paid or not: it may be
//! in Amplience already, and what is there is reported.

use chrono::{NaiveDate, TimeZone, Utc};
use gridsync_core::kafka::Record;
use gridsync_flow::{messages, partners::PartnerProfile, scheduler, Audience, FlowError, Send};
use gridsync_schemas::{events::InvoiceReceived, Event};
use gridsync_store::Timer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map};

use crate::{
    account::Change,
    documents::ACK_OVERDUE,
    flow::{invoice_subject, Billing},
};

pub(crate) const PAYMENT_REMINDER: &str = "payment-reminder";

/// The timer payload of a reminder.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReminderTimer {
    /// The invoice event (see [`scheduler::encode_source`]).
    pub source: String,
    pub offset_days: i64,
    pub due_date: String,
}

/// How a reminder speaks of its day.
fn when(offset_days: i64) -> String {
    match offset_days {
        0 => "due today".to_owned(),
        n if n < 0 => format!("due in {} days", -n),
        n => format!("{n} days overdue"),
    }
}

impl Billing {
    pub(crate) async fn schedule_reminders(
        &self,
        record: &Record,
        partner: &PartnerProfile,
        invoice: &InvoiceReceived,
        due_date: NaiveDate,
    ) -> Result<(), FlowError> {
        let source = scheduler::encode_source(&record.event)?;
        let late = self.clock.now_ms() - 86_400_000;
        for &offset in &self.config.reminder_offsets_days {
            let day = due_date + chrono::Duration::days(offset);
            let Some(at) = day.and_hms_opt(self.config.reminder_hour_utc, 0, 0) else { continue };
            let due_at_ms = Utc.from_utc_datetime(&at).timestamp_millis();
            if due_at_ms < late {
                continue;
            }
            let payload = ReminderTimer { source: source.clone(), offset_days: offset, due_date: due_date.to_string() };
            self.timers
                .schedule(&Timer {
                    key: format!("reminder/{}/{}/{offset:+}", partner.id, invoice.invoice_number),
                    kind: PAYMENT_REMINDER.into(),
                    subject: invoice_subject(&partner.id, &invoice.invoice_number),
                    due_at_ms,
                    payload: serde_json::to_string(&payload).map_err(FlowError::own_record)?,
                })
                .await?;
        }
        Ok(())
    }

    /// Sends the reminder of `timer`, unless its invoice was settled meanwhile.
    async fn remind(&self, record: &Record, timer: &Timer) -> Result<(), FlowError> {
        let payload: ReminderTimer = serde_json::from_str(&timer.payload).map_err(FlowError::own_record)?;
        let Event::InvoiceReceived(invoice) = &record.event else {
            return Err(FlowError::Invalid(format!(
                "reminder {} was set for a {}",
                timer.key,
                record.event.event_type().name()
            )));
        };
        let partner = self.ctx.partners.get(&invoice.envelope.trading_partner_id)?;
        let known = self.read_invoice(&partner.id, &invoice.invoice_number).await?;
        let settled = known.as_ref().is_some_and(|k| k.status != "open");
        // Settled since it came due: not sent, unless a firer that died began sending it (it may
        // be in Amplience already), which is then finished and reported like any other.
        let effect = messages::side_effect(PAYMENT_REMINDER, None, Some(timer.key.clone()));
        if settled && !self.ctx.effects.begun(record, &effect).await? {
            return Ok(());
        }
        let mut context = messages::context(record, partner)?;
        context["reminder"] = json!({ "offset_days": payload.offset_days, "due_date": payload.due_date, "when": when(payload.offset_days) });
        let extra: Map<_, _> = [(
            "reminder".to_owned(),
            json!({ "offsetDays": payload.offset_days, "dueDate": payload.due_date, "invoiceNumber": invoice.invoice_number }),
        )]
        .into_iter()
        .collect();
        let send = Send {
            action: PAYMENT_REMINDER,
            template_key: &self.config.messages.template(PAYMENT_REMINDER, partner)?,
            audience: Audience::Customer,
            context: &context,
            extra,
            once_per: Some(timer.key.clone()),
        };
        self.messages.send(&self.ctx.effects, record, partner, send).await?;
        if payload.offset_days > 0 {
            // Past its due date: the account status shows it overdue from today.
            self.account(record, partner, vec![Change::Refresh], Some(timer.key.clone())).await?;
        }
        Ok(())
    }
}

impl scheduler::Fire for Billing {
    fn kinds(&self) -> &'static [&'static str] {
        &[PAYMENT_REMINDER, ACK_OVERDUE]
    }

    async fn fire(&self, timer: &Timer) -> Result<(), FlowError> {
        let source = serde_json::from_str::<serde_json::Value>(&timer.payload).map_err(FlowError::own_record)?;
        let record = scheduler::decode_source(source["source"].as_str().unwrap_or_default())?;
        match timer.kind.as_str() {
            PAYMENT_REMINDER => self.remind(&record, timer).await,
            ACK_OVERDUE => self.ack_overdue(&record, timer).await,
            other => Err(FlowError::Invalid(format!("timer {} of unknown kind {other:?}", timer.key))),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reminders_speak_of_their_day() {
        assert_eq!(super::when(-3), "due in 3 days");
        assert_eq!(super::when(0), "due today");
        assert_eq!(super::when(14), "14 days overdue");
    }
}
