//! Element values as the contract's types: exact decimals, dates, parties.

use gridsync_schemas::{events::Party, Date, Decimal, Timestamp};

use crate::{EdiError, ErrorKind, Segment};

fn invalid(segment: &Segment<'_>, element: usize, message: String) -> EdiError {
    EdiError::new(ErrorKind::InvalidValue, segment.index, Some(element), message)
}

/// A decimal as sent: `decimal_mark` is `.` (X12) or the UNA's; `implied`
/// decimal places apply to values written without a mark (X12 `N2`).
pub(crate) fn decimal(
    segment: &Segment<'_>,
    element: usize,
    text: &str,
    decimal_mark: u8,
    implied: u32,
) -> Result<Decimal, EdiError> {
    let normalised = text.trim().replace(decimal_mark as char, ".");
    let value = if implied > 0 && !normalised.contains('.') {
        normalised.parse::<i64>().ok().map(|units| rust_decimal::Decimal::new(units, implied).to_string())
    } else {
        Some(normalised)
    };
    value
        .and_then(|v| v.parse::<Decimal>().ok())
        .ok_or_else(|| invalid(segment, element, format!("{}{element:02}: {text:?} is not a decimal", segment.tag)))
}

/// Element `n` as a decimal, if present.
pub(crate) fn optional_decimal(segment: &Segment<'_>, n: usize, mark: u8) -> Result<Option<Decimal>, EdiError> {
    segment.element(n).map(|t| decimal(segment, n, &t, mark, 0)).transpose()
}

/// `CCYYMMDD` (or `YYMMDD`, taken as 20YY) as a date.
pub(crate) fn date(segment: &Segment<'_>, element: usize, text: &str) -> Result<Date, EdiError> {
    let t = text.trim();
    let full = if t.len() == 6 { format!("20{t}") } else { t.to_owned() };
    chrono::NaiveDate::parse_from_str(&full, "%Y%m%d").map(Date::new).map_err(|_| {
        invalid(segment, element, format!("{}{element:02}: {text:?} is not a date (CCYYMMDD)", segment.tag))
    })
}

/// A date and optional `HHMM` time as an instant (UTC: EDI carries no zone).
pub(crate) fn timestamp(date: Date, hhmm: Option<&str>) -> Timestamp {
    let time =
        hhmm.and_then(|t| chrono::NaiveTime::parse_from_str(t.get(..4).unwrap_or(t), "%H%M").ok()).unwrap_or_default();
    Timestamp::from_millis(date.value().and_time(time).and_utc().timestamp_millis())
}

pub(crate) fn party(id: String, qualifier: Option<String>, name: Option<String>) -> Party {
    Party { id, id_qualifier: qualifier, name, email: None }
}

/// Element `n` as one of the `codes` it may hold, or a precise error listing them.
pub(crate) fn coded<T: Copy>(segment: &Segment<'_>, n: usize, what: &str, codes: &[(&str, T)]) -> Result<T, EdiError> {
    let value = segment.required(n, what)?;
    codes.iter().find(|(code, _)| *code == value.as_ref()).map(|(_, v)| *v).ok_or_else(|| {
        let allowed: Vec<&str> = codes.iter().map(|(code, _)| *code).collect();
        invalid(segment, n, format!("{}{n:02} ({what}): {value:?} is not one of {}", segment.tag, allowed.join(", ")))
    })
}
