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

/// `--flag value` and `ENV=value` parse straight into a secret, so an args struct's derived
/// `Debug` never holds the text.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(secret))
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Secret::new(secret)
    }
}

/// Overwritten when dropped, so a freed secret does not linger in memory.
impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_parses_and_never_prints() {
        #[derive(Debug, clap::Parser)]
        struct Args {
            #[arg(long)]
            secret: Option<Secret>,
        }
        let args = <Args as clap::Parser>::parse_from(["x", "--secret", "hunter2"]);
        assert_eq!(args.secret.as_ref().map(Secret::expose), Some("hunter2"));
        let printed = format!("{args:?} {args:#?}");
        assert!(!printed.contains("hunter2") && printed.contains("Secret(***)"), "{printed}");
    }
}
