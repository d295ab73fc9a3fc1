//! Value types behind the contract's logical types.
//!
//! Each has two serde forms: the Avro one (apache-avro's serde is not
//! human-readable) and an exact, readable one for JSON (`gridsync edi inspect`,
//! logs). Deserialisation accepts either, so `from_value` and JSON both work.

use std::{fmt, str::FromStr};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Why a value does not fit the contract.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    #[error("decimal {0} has more than {scale} decimal places", scale = Decimal::SCALE)]
    TooManyDecimalPlaces(String),
    #[error("decimal {0} is out of range")]
    DecimalOutOfRange(String),
    #[error("not a decimal: {0}")]
    NotADecimal(String),
    #[error("not a date (YYYY-MM-DD): {0}")]
    NotADate(String),
    #[error("not a timestamp (RFC 3339): {0}")]
    NotATimestamp(String),
}

/// An exact decimal, written as Avro `decimal(28, 6)` on `fixed(12)`: never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Decimal(rust_decimal::Decimal);

impl Decimal {
    /// The scale every decimal of the contract is written at.
    pub const SCALE: u32 = 6;
    /// Bytes of the Avro `fixed` it is written in (28 digits need 12).
    pub const FIXED_SIZE: usize = 12;
    /// The largest magnitude 12 bytes of two's complement hold, unscaled.
    const MAX_UNSCALED: i128 = (1 << 95) - 1;

    /// Accepts a value with at most [`Self::SCALE`] decimal places; rounding is never silent.
    pub fn new(value: rust_decimal::Decimal) -> Result<Self, ValueError> {
        if value.normalize().scale() > Self::SCALE {
            return Err(ValueError::TooManyDecimalPlaces(value.to_string()));
        }
        let decimal = Decimal(value);
        // Rescaling to 6 places can overflow rust_decimal's 96-bit mantissa.
        let mut rescaled = value;
        rescaled.rescale(Self::SCALE);
        if rescaled.scale() != Self::SCALE || decimal.unscaled().abs() > Self::MAX_UNSCALED {
            return Err(ValueError::DecimalOutOfRange(value.to_string()));
        }
        Ok(decimal)
    }

    pub const fn value(&self) -> rust_decimal::Decimal {
        self.0
    }

    /// The unscaled integer at [`Self::SCALE`], as Avro stores it.
    fn unscaled(&self) -> i128 {
        let mut v = self.0;
        v.rescale(Self::SCALE);
        v.mantissa()
    }

    pub(crate) fn from_unscaled_bytes(bytes: &[u8]) -> Result<Self, ValueError> {
        if bytes.is_empty() || bytes.len() > 16 {
            return Err(ValueError::DecimalOutOfRange(format!("{} bytes", bytes.len())));
        }
        // Big-endian two's complement, sign-extended to 16 bytes.
        let fill = if bytes[0] & 0x80 != 0 { 0xFF } else { 0x00 };
        let mut buf = [fill; 16];
        buf[16 - bytes.len()..].copy_from_slice(bytes);
        let unscaled = i128::from_be_bytes(buf);
        rust_decimal::Decimal::try_from_i128_with_scale(unscaled, Self::SCALE)
            .map(|d| Decimal(d.normalize()))
            .map_err(|_| ValueError::DecimalOutOfRange(unscaled.to_string()))
    }

    /// Big-endian two's complement in exactly [`Self::FIXED_SIZE`] bytes.
    pub(crate) fn to_unscaled_bytes(self) -> [u8; Self::FIXED_SIZE] {
        let bytes = self.unscaled().to_be_bytes();
        let mut out = [0u8; Self::FIXED_SIZE];
        out.copy_from_slice(&bytes[16 - Self::FIXED_SIZE..]);
        out
    }
}

impl FromStr for Decimal {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value =
            rust_decimal::Decimal::from_str_exact(s.trim()).map_err(|_| ValueError::NotADecimal(s.to_owned()))?;
        Decimal::new(value)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_bytes(&self.to_unscaled_bytes())
        }
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal as Avro bytes or a string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Decimal, E> {
                Decimal::from_unscaled_bytes(v).map_err(E::custom)
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Decimal, E> {
                self.visit_bytes(&v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Decimal, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                self.visit_bytes(&bytes)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Visitor)
        } else {
            deserializer.deserialize_bytes(Visitor)
        }
    }
}

/// A calendar date, written as Avro `date` (days since 1970-01-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date(NaiveDate);

impl Date {
    pub const fn new(date: NaiveDate) -> Self {
        Date(date)
    }

    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        NaiveDate::from_ymd_opt(year, month, day).map(Date)
    }

    pub const fn value(&self) -> NaiveDate {
        self.0
    }

    pub(crate) fn days_since_epoch(&self) -> i32 {
        // A NaiveDate's range (±262,143 years) is far inside i32 days.
        (self.0 - NaiveDate::default()).num_days() as i32
    }

    pub(crate) fn from_days(days: i64) -> Option<Self> {
        NaiveDate::default().checked_add_signed(chrono::Duration::try_days(days)?).map(Date)
    }
}

impl FromStr for Date {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map(Date).map_err(|_| ValueError::NotADate(s.to_owned()))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.format("%Y-%m-%d").fmt(f)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i32(self.days_since_epoch())
        }
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("days since 1970-01-01 or YYYY-MM-DD")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Date, E> {
                Date::from_days(v).ok_or_else(|| E::custom(format!("date out of range: {v} days")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Date, E> {
                self.visit_i64(i64::try_from(v).map_err(E::custom)?)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
                v.parse().map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Visitor)
        } else {
            deserializer.deserialize_i32(Visitor)
        }
    }
}

/// An instant, written as Avro `timestamp-millis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }

    pub const fn millis(&self) -> i64 {
        self.0
    }

    pub fn to_datetime(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
    }
}

impl FromStr for Timestamp {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Timestamp(t.timestamp_millis()))
            .map_err(|_| ValueError::NotATimestamp(s.to_owned()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).fmt(f),
            None => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("milliseconds since the epoch or an RFC 3339 timestamp")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                v.parse().map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Visitor)
        } else {
            deserializer.deserialize_i64(Visitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_bytes_round_trip_at_scale_six() {
        for s in ["0", "1", "-1", "12.5", "-0.000001", "99999999999999999999.999999", "-128", "127.999999", "255"] {
            let d: Decimal = s.parse().unwrap();
            let back = Decimal::from_unscaled_bytes(&d.to_unscaled_bytes()).unwrap();
            assert_eq!(back, d, "{s}");
            assert_eq!(back.to_string(), d.to_string());
        }
        // 12.5 at scale 6 is 12_500_000 = 0xBEBC20, sign-extended to 12 bytes.
        assert_eq!(
            "12.5".parse::<Decimal>().unwrap().to_unscaled_bytes(),
            [0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0xBE, 0xBC, 0x20]
        );
        assert_eq!("-0.000001".parse::<Decimal>().unwrap().to_unscaled_bytes(), [0xFF; 12]);
        // 28 digits fit; more than 12 bytes of two's complement do not.
        assert!("9999999999999999999999.999999".parse::<Decimal>().is_ok());
        assert!(matches!("50000000000000000000000.5".parse::<Decimal>(), Err(ValueError::DecimalOutOfRange(_))));
    }

    #[test]
    fn decimal_refuses_to_round() {
        assert!(matches!("1.0000001".parse::<Decimal>(), Err(ValueError::TooManyDecimalPlaces(_))));
        assert!(matches!("1.5e3".parse::<Decimal>(), Err(ValueError::NotADecimal(_))));
        assert_eq!("1.500000000".parse::<Decimal>().unwrap().to_string(), "1.5");
    }

    #[test]
    fn json_forms_are_exact_strings() {
        let d: Decimal = "19.99".parse().unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"19.99\"");
        let date = Date::from_ymd(2026, 11, 25).unwrap();
        assert_eq!(serde_json::to_string(&date).unwrap(), "\"2026-11-25\"");
        assert_eq!(serde_json::from_str::<Date>("\"2026-11-25\"").unwrap(), date);
        assert_eq!(date.days_since_epoch(), 20_782);
        let ts = Timestamp::from_millis(1_764_072_000_123);
        assert_eq!(ts.to_string(), "2025-11-25T12:00:00.123Z");
        assert_eq!(serde_json::from_str::<Timestamp>("\"2025-11-25T12:00:00.123Z\"").unwrap(), ts);
    }
}
