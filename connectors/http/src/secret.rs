//! Secrets (client secrets, webhook secrets): never printed.

#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(secret: &str) -> Self {
        Secret(secret.as_bytes().to_vec())
    }

    /// A secret kept in a file (a mounted secret), without the trailing newline editors add.
    pub fn read_file(path: &std::path::Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
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
