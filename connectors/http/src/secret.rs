//! Secrets (client secrets, webhook secrets): never printed.

#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(secret: &str) -> Self {
        Secret(secret.as_bytes().to_vec())
    }

    /// The secret's text, for the one place that must send it (a token request).
    pub fn expose(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The secret's bytes, for keying a MAC.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}
