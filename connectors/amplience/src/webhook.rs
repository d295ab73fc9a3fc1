//! Amplience webhooks: signature verification and the envelope.
//!
//! Amplience signs the raw request body: `X-Amplience-Webhook-Signature` is
//! the standard base64 of HMAC-SHA256 over the exact bytes sent, keyed with the
//! webhook secret. Verification therefore runs on the raw bytes, before any
//! parsing, and compares in constant time. Two secrets may be valid at once, so
//! a secret can be rotated without refusing deliveries in flight.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header Amplience puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Amplience-Webhook-Signature";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no {SIGNATURE_HEADER} header")]
    Missing,
    #[error("{SIGNATURE_HEADER} is not base64")]
    NotBase64,
    #[error("the signature matches no configured secret")]
    Mismatch,
    #[error("no webhook secret is configured")]
    NoSecret,
}

pub use gridsync_http::Secret;

/// HMAC-SHA256 keyed with `secret` (HMAC takes keys of any length).
fn mac(secret: &Secret) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(secret.bytes()).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// The signature Amplience sends for `body` (the simulator signs with this).
pub fn sign(body: &[u8], secret: &Secret) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `header` against every secret (current and previous during a
/// rotation); constant-time per comparison.
pub fn verify(body: &[u8], header: Option<&str>, secrets: &[Secret]) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(SignatureError::Missing)?;
    let signature = STANDARD.decode(header).map_err(|_| SignatureError::NotBase64)?;
    let matches = secrets.iter().any(|secret| {
        let mut mac = mac(secret);
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The envelope of every webhook delivery.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The delivery's id: the same on every retry, so duplicates are recognised by it.
    pub id: String,
    /// The event, e.g. `dynamic-content.content-item.workflow.updated`.
    pub name: String,
    #[serde(default)]
    pub sequence_id: Option<serde_json::Value>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub resource: Option<serde_json::Value>,
    #[serde(default)]
    pub payload: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"8f0b1a52-5c1e-4c43-9a52-1a0e7d3c9f10","name":"dynamic-content.snapshot.published","payload":{"createdFrom":"content-item"}}"#;

    #[test]
    fn a_body_signed_with_the_secret_verifies() {
        let secret = Secret::new("whsec-current");
        let signature = sign(BODY, &secret);
        assert_eq!(verify(BODY, Some(&signature), &[secret]), Ok(()));
    }

    #[test]
    fn the_signature_is_standard_base64_of_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signature = sign(b"what do ya want for nothing?", &Secret::new("Jefe"));
        assert_eq!(
            STANDARD.decode(signature).unwrap(),
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a,
                0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43
            ]
        );
    }

    #[test]
    fn during_a_rotation_both_secrets_are_accepted() {
        let (old, new) = (Secret::new("whsec-old"), Secret::new("whsec-new"));
        let both = [new.clone(), old.clone()];
        assert_eq!(verify(BODY, Some(&sign(BODY, &old)), &both), Ok(()));
        assert_eq!(verify(BODY, Some(&sign(BODY, &new)), &both), Ok(()));
        assert_eq!(verify(BODY, Some(&sign(BODY, &old)), &[new]), Err(SignatureError::Mismatch));
    }

    #[test]
    fn forged_tampered_and_unsigned_requests_are_refused() {
        let secret = [Secret::new("whsec-current")];
        let forged = sign(BODY, &Secret::new("guessed"));
        assert_eq!(verify(BODY, Some(&forged), &secret), Err(SignatureError::Mismatch));
        let good = sign(BODY, &secret[0]);
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert_eq!(verify(&tampered, Some(&good), &secret), Err(SignatureError::Mismatch));
        assert_eq!(verify(BODY, None, &secret), Err(SignatureError::Missing));
        assert_eq!(verify(BODY, Some("  "), &secret), Err(SignatureError::Missing));
        assert_eq!(verify(BODY, Some("not base64!"), &secret), Err(SignatureError::NotBase64));
        assert_eq!(verify(BODY, Some(&good), &[]), Err(SignatureError::NoSecret));
        assert_eq!(format!("{:?}", secret[0]), "Secret(***)", "a secret never reaches the logs");
    }

    #[test]
    fn the_envelope_parses() {
        let envelope: Envelope = serde_json::from_slice(BODY).unwrap();
        assert_eq!(envelope.name, "dynamic-content.snapshot.published");
        assert_eq!(envelope.payload["createdFrom"], "content-item");
    }
}
