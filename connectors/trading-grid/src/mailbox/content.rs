//! What goes into an outbound file: bytes already in memory (an EDI
//! document), or a file on local disk (a content package with large
//! attachments) read in fixed-size chunks, so writing and checksumming never
//! hold a large file in memory.

use std::{path::Path, pin::Pin};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{io, MailboxError};

/// Chunk size for hashing and copying.
const CHUNK: usize = 64 * 1024;

/// The content of an outbound file.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    Bytes(&'a [u8]),
    /// A local file, streamed.
    File(&'a Path),
}

pub(crate) type Reader<'a> = Pin<Box<dyn AsyncRead + Send + 'a>>;

impl<'a> Content<'a> {
    /// A fresh reader from the start (a retried write reads it again).
    pub(crate) async fn reader(&self) -> Result<Reader<'a>, MailboxError> {
        Ok(match *self {
            Content::Bytes(bytes) => Box::pin(bytes),
            Content::File(path) => Box::pin(tokio::fs::File::open(path).await.map_err(io("opening", path))?),
        })
    }

    /// Lower-case hex SHA-256.
    pub(crate) async fn sha256(&self) -> Result<String, MailboxError> {
        match *self {
            Content::Bytes(bytes) => Ok(format!("{:x}", Sha256::digest(bytes))),
            Content::File(path) => sha256_of(self.reader().await?).await.map_err(io("reading", path)),
        }
    }
}

/// Lower-case hex SHA-256 of everything `reader` yields, a chunk at a time.
pub(crate) async fn sha256_of(mut reader: impl AsyncRead + Unpin) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            return Ok(format!("{:x}", hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}
