//! A package's attachments: the media its content links to, fetched from
//! Amplience into the package's spool folder before the package is built.
//! Each is streamed to disk (memory bounded), retried from the start when a
//! fetch fails part-way, and used only once whole (see
//! [`gridsync_amplience::media`]); a link Amplience does not serve (4xx) fails
//! the package, which is then dead-lettered with the link's URL.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use gridsync_amplience::{AmplienceError, Fetched, MediaClient, MediaLink};
use gridsync_core::telemetry::Metrics;
use prometheus::{opts, IntCounter, IntCounterVec};

/// One fetched attachment, on local disk.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub link: MediaLink,
    /// Its name in the package: `attachments/<name>`.
    pub part: String,
    pub path: PathBuf,
    pub fetched: Fetched,
    pub url: String,
}

/// Fetches attachments and counts what it fetched.
pub struct Attachments {
    client: MediaClient,
    fetches: IntCounterVec,
    bytes: IntCounter,
}

impl Attachments {
    /// Registers `gridsync_distribution_attachments_total{outcome}` and
    /// `gridsync_distribution_attachment_bytes_total`.
    pub fn new(client: MediaClient, metrics: &Metrics) -> Result<Self, prometheus::Error> {
        let fetches = IntCounterVec::new(
            opts!("distribution_attachments_total", "Package attachments fetched from Amplience, by outcome."),
            &["outcome"],
        )?;
        let bytes = IntCounter::new("distribution_attachment_bytes_total", "Bytes of package attachments fetched.")?;
        metrics.register(Box::new(fetches.clone()))?;
        metrics.register(Box::new(bytes.clone()))?;
        Ok(Attachments { client, fetches, bytes })
    }

    /// Fetches every link into `dir`, in order.
    pub async fn fetch_all(&self, links: &[MediaLink], dir: &Path) -> Result<Vec<Attachment>, AmplienceError> {
        let mut attachments = Vec::with_capacity(links.len());
        let mut taken = HashSet::new();
        for (index, link) in links.iter().enumerate() {
            let path = dir.join(format!("attachment-{index}"));
            let url = self.client.url(link);
            let fetched = match self.client.fetch_to(link, &path).await {
                Ok(fetched) => fetched,
                Err(e) => {
                    self.fetches.with_label_values(&["failed"]).inc();
                    return Err(e);
                }
            };
            self.fetches.with_label_values(&["fetched"]).inc();
            self.bytes.inc_by(fetched.bytes);
            let part = part_name(link, fetched.content_type.as_deref(), &mut taken);
            attachments.push(Attachment { link: link.clone(), part, path, fetched, url });
        }
        Ok(attachments)
    }
}

/// The extension a media type is known by.
fn extension(content_type: Option<&str>) -> &'static str {
    let essence = content_type.and_then(|t| t.split(';').next()).map(str::trim).unwrap_or_default();
    match essence {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "application/pdf" => "pdf",
        "video/mp4" => "mp4",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// `attachments/<name>.<ext>`, the name made safe (`[A-Za-z0-9._-]`) and unique in the package;
/// Amplience asset names usually have no extension, so it comes from the media type.
fn part_name(link: &MediaLink, content_type: Option<&str>, taken: &mut HashSet<String>) -> String {
    let safe: String =
        link.name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
    let safe = safe.trim_matches('.').to_owned();
    let has_extension = safe.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && (1..=5).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphanumeric())
    });
    let base = if has_extension { safe } else { format!("{safe}.{}", extension(content_type)) };
    let mut name = format!("attachments/{base}");
    let mut n = 1;
    while !taken.insert(name.clone()) {
        n += 1;
        name = format!("attachments/{n}-{base}");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str) -> MediaLink {
        MediaLink { id: None, name: name.into(), endpoint: "acme".into(), default_host: "h".into(), kind: "i" }
    }

    #[test]
    fn parts_are_safe_unique_and_typed() {
        let mut taken = HashSet::new();
        assert_eq!(
            part_name(&link("terms diagram"), Some("image/svg+xml"), &mut taken),
            "attachments/terms-diagram.svg"
        );
        assert_eq!(
            part_name(&link("terms/diagram"), Some("image/svg+xml"), &mut taken),
            "attachments/2-terms-diagram.svg"
        );
        assert_eq!(
            part_name(&link("../guide.pdf"), Some("application/octet-stream"), &mut taken),
            "attachments/-guide.pdf"
        );
        assert_eq!(part_name(&link("clip"), None, &mut taken), "attachments/clip.bin");
    }
}
