//! What Lens returns: transactions with their status, functional-ack status
//! and receipts, one page at a time.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// One `contentkeys(names: [...])` entry: e.g. `purchase order number` → `4500012345`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ContentKey {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// A Lens transaction, with the fields gridsync reads (others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct LensTransaction {
    pub transactionid: String,
    #[serde(default)]
    pub correlationid: Option<String>,
    /// `850`, `INVOIC`, ...
    #[serde(default)]
    pub editype: Option<String>,
    /// `ISA`, `UNA` or `BIN`.
    #[serde(default)]
    pub envelopetype: Option<String>,
    #[serde(default)]
    pub senderaddress: Option<String>,
    #[serde(default)]
    pub receiveraddress: Option<String>,
    /// The interchange control number.
    #[serde(default)]
    pub senderreference: Option<String>,
    /// The status letter: B, C, S, N, D, U, P, H, R, V, F.
    pub status: String,
    #[serde(default)]
    pub statusdate: Option<String>,
    #[serde(default)]
    pub deliverystatus: Option<String>,
    #[serde(default)]
    pub deliveryreceipt: Option<String>,
    /// The functional-ack letter: A, C, E, M, N, P, R, S, T, W.
    #[serde(default)]
    pub fastatus: Option<String>,
    #[serde(default)]
    pub fastatusdate: Option<String>,
    #[serde(default)]
    pub errorcode: Option<String>,
    #[serde(default)]
    pub externalerrormessage: Option<String>,
    #[serde(default)]
    pub arrivaltime: Option<String>,
    #[serde(default)]
    pub contentkeys: Vec<ContentKey>,
}

impl LensTransaction {
    /// The value of content key `name` (case-insensitive), if Lens extracted it.
    pub fn content_key(&self, name: &str) -> Option<&str> {
        self.contentkeys
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(name))
            .and_then(|k| k.value.as_deref())
            .filter(|v| !v.trim().is_empty())
    }
}

/// One page of `getTransactions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TransactionPage {
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub scrollid: Option<String>,
    #[serde(default)]
    pub transactions: Vec<LensTransaction>,
}

/// A Lens date: RFC 3339, or a zone-less ISO date-time taken as UTC.
pub fn parse_lens_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_with_and_without_zones() {
        let expected = "2026-11-25T10:15:00Z".parse::<DateTime<Utc>>().ok();
        assert_eq!(parse_lens_time("2026-11-25T10:15:00Z"), expected);
        assert_eq!(parse_lens_time("2026-11-25T11:15:00+01:00"), expected);
        assert_eq!(parse_lens_time("2026-11-25 10:15:00"), expected);
        assert_eq!(parse_lens_time("2026-11-25T10:15:00.000"), expected);
        assert_eq!(parse_lens_time("yesterday"), None);
    }
}
