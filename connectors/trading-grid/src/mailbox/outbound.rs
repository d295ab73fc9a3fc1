//! The outbound mailbox: documents and content packages for partners, written
//! so the Trading Grid gateway never picks up a half-written file.
//!
//! A file is written under a hidden temporary name, synced, then renamed to
//! `<partner>_<document type>_<reference>.<extension>` (atomic within one file
//! system), with its SHA-256 beside it in `<name>.sha256`. Writing the same
//! name again is idempotent when the content is the same, and refused when it
//! differs: a retry never sends a partner two different documents under one name.

use std::path::{Path, PathBuf};

use super::{
    content::{sha256_of, Content},
    io, MailboxError,
};

pub struct OutboundMailbox {
    dir: PathBuf,
}

/// A file written to the outbound mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
    /// False when an identical file was already there (a retry).
    pub created: bool,
}

/// Keeps `[A-Za-z0-9.-]` and maps everything else to `-`, so a partner id or
/// reference can never leave the folder or collide with the `_` separators.
fn safe(part: &str) -> String {
    let cleaned: String =
        part.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    cleaned.trim_matches('.').to_owned()
}

impl OutboundMailbox {
    pub async fn open(dir: &Path) -> Result<Self, MailboxError> {
        tokio::fs::create_dir_all(dir).await.map_err(io("creating", dir))?;
        Ok(OutboundMailbox { dir: dir.to_owned() })
    }

    /// The file name for a partner's document.
    pub fn file_name(partner: &str, document_type: &str, reference: &str, extension: &str) -> String {
        format!("{}_{}_{}.{}", safe(partner), safe(document_type), safe(reference), safe(extension))
    }

    /// Writes `content` under `name` atomically, recording its checksum.
    pub async fn write(&self, name: &str, content: &[u8]) -> Result<Written, MailboxError> {
        self.write_content(name, Content::Bytes(content)).await
    }

    /// [`Self::write`] of bytes or of a local file, streamed.
    pub async fn write_content(&self, name: &str, content: Content<'_>) -> Result<Written, MailboxError> {
        let path = self.dir.join(name);
        let sha256 = content.sha256().await?;
        let checksum = self.dir.join(format!("{name}.sha256"));
        if let Ok(existing) = tokio::fs::File::open(&path).await {
            let existing_sha = sha256_of(existing).await.map_err(io("reading", &path))?;
            if existing_sha == sha256 {
                return Ok(Written { path, sha256, created: false });
            }
            return Err(MailboxError::Conflict { path, existing_sha256: existing_sha });
        }
        let temp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut file = tokio::fs::File::create(&temp).await.map_err(io("creating", &temp))?;
        tokio::io::copy(&mut content.reader().await?, &mut file).await.map_err(io("writing", &temp))?;
        file.sync_all().await.map_err(io("syncing", &temp))?;
        drop(file);
        // The checksum first: when the document appears, its checksum is already there.
        tokio::fs::write(&checksum, format!("{sha256}  {name}\n")).await.map_err(io("writing", &checksum))?;
        tokio::fs::rename(&temp, &path).await.map_err(io("renaming", &temp))?;
        Ok(Written { path, sha256, created: true })
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[tokio::test]
    async fn writes_atomically_with_a_checksum_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let outbound = OutboundMailbox::open(&dir.path().join("outbound")).await.unwrap();
        let name = OutboundMailbox::file_name("ACME/../x", "997", "000000905", "edi");
        assert_eq!(name, "ACME-..-x_997_000000905.edi", "no path can be smuggled in");

        let first = outbound.write(&name, b"ISA*...~").await.unwrap();
        assert!(first.created);
        assert_eq!(first.sha256, format!("{:x}", Sha256::digest(b"ISA*...~")));
        assert_eq!(std::fs::read(&first.path).unwrap(), b"ISA*...~");
        let sidecar = std::fs::read_to_string(dir.path().join(format!("outbound/{name}.sha256"))).unwrap();
        assert_eq!(sidecar, format!("{}  {name}\n", first.sha256));

        let retry = outbound.write(&name, b"ISA*...~").await.unwrap();
        assert!(!retry.created, "the same document again is a no-op");
        let conflict = outbound.write(&name, b"something else").await.unwrap_err();
        assert!(conflict.to_string().contains("a different document already has this name"), "{conflict}");
        assert_eq!(std::fs::read(&first.path).unwrap(), b"ISA*...~", "the original is untouched");

        let names: Vec<String> = std::fs::read_dir(dir.path().join("outbound"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    }

    #[tokio::test]
    async fn a_file_is_streamed_and_compared_by_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let outbound = OutboundMailbox::open(&dir.path().join("outbound")).await.unwrap();
        let source = dir.path().join("package.zip");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &bytes).unwrap();
        let written = outbound.write_content("ACME_PKG_c-1-v1.zip", Content::File(&source)).await.unwrap();
        assert!(written.created);
        assert_eq!(written.sha256, format!("{:x}", Sha256::digest(&bytes)));
        assert_eq!(std::fs::read(&written.path).unwrap(), bytes);
        let again = outbound.write("ACME_PKG_c-1-v1.zip", &bytes).await.unwrap();
        assert!(!again.created, "the same bytes from memory are the same file");
        std::fs::write(&source, b"other").unwrap();
        let conflict = outbound.write_content("ACME_PKG_c-1-v1.zip", Content::File(&source)).await.unwrap_err();
        assert!(matches!(conflict, MailboxError::Conflict { .. }), "{conflict}");
    }
}
