//! A partner-content package: one ZIP per content version and partner, with
//! a manifest (what it is, for whom, which version, what it replaces, the
//! SHA-256 of every part), the content as published (JSON), rendered (HTML),
//! and the media it links to (`attachments/`, streamed from their spool
//! files, so a package's size never sets the memory used). Built
//! deterministically (fixed entry times, sorted fields), so building it again
//! after a crash yields the same bytes under the same name.

use std::io::{Seek, Write};

use gridsync_amplience::MediaLink;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zip::{write::SimpleFileOptions, CompressionMethod, DateTime, ZipWriter};

use crate::attachments::Attachment;

/// What a package carries.
#[derive(Debug, Clone)]
pub struct Package {
    pub content_item_id: String,
    pub version: i64,
    /// The content kind (`TRADING_TERMS`, ...).
    pub kind: String,
    pub title: String,
    pub locale: Option<String>,
    pub partner: String,
    pub read_confirmation_required: bool,
    /// The package of an older version this one replaces: `(version, file name)`.
    pub replaces: Option<(i64, String)>,
    /// The content's body as published, JSON.
    pub body: String,
}

/// `<partner>_PKG_<content item id>-v<version>.zip`: the partner, the content and
/// its version are read back from the name (see [`parse_name`]).
pub fn file_name(partner: &str, content_item_id: &str, version: i64) -> String {
    gridsync_trading_grid::mailbox::OutboundMailbox::file_name(
        partner,
        "PKG",
        &format!("{content_item_id}-v{version}"),
        "zip",
    )
}

/// `(partner, content item id, version)` of a package's file name.
pub fn parse_name(name: &str) -> Option<(String, String, i64)> {
    let stem = name.strip_suffix(".zip")?;
    let (partner, rest) = stem.split_once("_PKG_")?;
    let (content, version) = rest.rsplit_once("-v")?;
    Some((partner.to_owned(), content.to_owned(), version.parse().ok()?))
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A media link as the attachment it became: an image shown, anything else linked.
fn media(value: &Value, attachments: &[Attachment]) -> Option<String> {
    let link = MediaLink::parse(value)?;
    let attachment = attachments.iter().find(|a| a.link == link)?;
    let is_image = attachment.fetched.content_type.as_deref().is_some_and(|t| t.starts_with("image/"));
    Some(if is_image {
        format!("<img src=\"{0}\" alt=\"{1}\">", escape(&attachment.part), escape(&link.name))
    } else {
        format!("<a href=\"{0}\">{1}</a>", escape(&attachment.part), escape(&link.name))
    })
}

/// One list item: text as text, a media link as its attachment.
fn inline(value: &Value, attachments: &[Attachment]) -> String {
    media(value, attachments)
        .unwrap_or_else(|| escape(&value.as_str().map_or_else(|| value.to_string(), str::to_owned)))
}

/// The content as a page: its title and each field (text as paragraphs, lists as lists, media
/// links as their attachments).
fn render_html(title: &str, body: &Value, attachments: &[Attachment]) -> String {
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title></head>\n<body><h1>{0}</h1>\n",
        escape(title)
    );
    if let Some(fields) = body.as_object() {
        for (name, value) in fields.iter().filter(|(name, _)| !name.starts_with('_') && *name != "title") {
            html.push_str(&format!("<h2>{}</h2>\n", escape(name)));
            if let Some(media) = media(value, attachments) {
                html.push_str(&format!("<p>{media}</p>\n"));
                continue;
            }
            match value {
                Value::String(text) => html.push_str(&format!("<p>{}</p>\n", escape(text))),
                Value::Array(items) => {
                    html.push_str("<ul>\n");
                    for item in items {
                        html.push_str(&format!("<li>{}</li>\n", inline(item, attachments)));
                    }
                    html.push_str("</ul>\n");
                }
                other => html.push_str(&format!("<pre>{}</pre>\n", escape(&other.to_string()))),
            }
        }
    }
    html.push_str("</body></html>\n");
    html
}

/// Writes the package to `out`, its attachments copied from their files a chunk at a time.
pub fn write<W: Write + Seek>(
    package: &Package,
    attachments: &[Attachment],
    out: W,
) -> Result<W, zip::result::ZipError> {
    let body: Value = serde_json::from_str(&package.body).unwrap_or(Value::Null);
    let content = serde_json::to_vec_pretty(&body).unwrap_or_default();
    let html = render_html(&package.title, &body, attachments).into_bytes();
    let part = |name: &str, bytes: &[u8]| json!({ "name": name, "bytes": bytes.len(), "sha256": sha256(bytes) });
    let mut parts = vec![part("content.json", &content), part("content.html", &html)];
    parts.extend(attachments.iter().map(|a| {
        json!({
            "name": a.part, "bytes": a.fetched.bytes, "sha256": a.fetched.sha256,
            "contentType": a.fetched.content_type, "mediaId": a.link.id, "mediaName": a.link.name, "source": a.url,
        })
    }));
    let manifest = json!({
        "package": file_name(&package.partner, &package.content_item_id, package.version),
        "contentItemId": package.content_item_id,
        "version": package.version,
        "contentType": package.kind,
        "title": package.title,
        "locale": package.locale,
        "partner": package.partner,
        "readConfirmationRequired": package.read_confirmation_required,
        "replaces": package.replaces.as_ref().map(|(version, file)| json!({ "version": version, "package": file })),
        "parts": parts,
    });
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let mut zip = ZipWriter::new(out);
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default());
    for (name, bytes) in [("manifest.json", &manifest), ("content.json", &content), ("content.html", &html)] {
        zip.start_file(name, options)?;
        zip.write_all(bytes).map_err(zip::result::ZipError::Io)?;
    }
    // Media is compressed already: stored as it is, which also keeps building cheap.
    for attachment in attachments {
        let options = options
            .compression_method(CompressionMethod::Stored)
            .large_file(attachment.fetched.bytes >= u64::from(u32::MAX));
        zip.start_file(attachment.part.as_str(), options)?;
        let mut file = std::fs::File::open(&attachment.path).map_err(zip::result::ZipError::Io)?;
        std::io::copy(&mut file, &mut zip).map_err(zip::result::ZipError::Io)?;
    }
    zip.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_names_itself_and_holds_what_its_manifest_says() {
        let package = Package {
            content_item_id: "c-1".into(),
            version: 3,
            kind: "TRADING_TERMS".into(),
            title: "Terms <2027>".into(),
            locale: Some("en-GB".into()),
            partner: "ACME".into(),
            read_confirmation_required: true,
            replaces: Some((2, file_name("ACME", "c-1", 2))),
            body: r#"{"title":"Terms","sections":["Pay in 30 days"]}"#.into(),
        };
        let build = || write(&package, &[], std::io::Cursor::new(Vec::new())).unwrap().into_inner();
        let bytes = build();
        assert_eq!(bytes, build(), "the same bytes every time");
        let name = file_name("ACME", "c-1", 3);
        assert_eq!(name, "ACME_PKG_c-1-v3.zip");
        assert_eq!(parse_name(&name), Some(("ACME".into(), "c-1".into(), 3)));
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut read = |name: &str| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut archive.by_name(name).unwrap(), &mut text).unwrap();
            text
        };
        let manifest: Value = serde_json::from_str(&read("manifest.json")).unwrap();
        let html = read("content.html");
        assert!(html.contains("<h1>Terms &lt;2027&gt;</h1>") && html.contains("<li>Pay in 30 days</li>"), "{html}");
        assert_eq!(manifest["parts"][1]["sha256"], sha256(html.as_bytes()));
        assert_eq!(manifest["replaces"]["version"], 2);
        assert_eq!(manifest["readConfirmationRequired"], true);
    }

    #[test]
    fn media_links_become_attachments_shown_in_the_page_and_checksummed() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec();
        std::fs::write(dir.path().join("a0"), &image).unwrap();
        let link = json!({ "_meta": { "schema": "http://bigcontent.io/cms/schema/v1/core#/definitions/image-link" },
                           "id": "m1", "name": "diagram", "endpoint": "acme", "defaultHost": "cdn.example" });
        let attachment = Attachment {
            link: MediaLink::parse(&link).unwrap(),
            part: "attachments/diagram.svg".into(),
            path: dir.path().join("a0"),
            fetched: gridsync_amplience::Fetched {
                bytes: image.len() as u64,
                sha256: sha256(&image),
                content_type: Some("image/svg+xml".into()),
            },
            url: "https://cdn.example/i/acme/diagram".into(),
        };
        let package = Package {
            content_item_id: "c-1".into(),
            version: 1,
            kind: "PROCESS_GUIDE".into(),
            title: "Guide".into(),
            locale: None,
            partner: "ACME".into(),
            read_confirmation_required: false,
            replaces: None,
            body: json!({ "title": "Guide", "diagram": link }).to_string(),
        };
        let bytes = write(&package, &[attachment], std::io::Cursor::new(Vec::new())).unwrap().into_inner();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut read = |name: &str| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut archive.by_name(name).unwrap(), &mut bytes).unwrap();
            bytes
        };
        assert_eq!(read("attachments/diagram.svg"), image);
        let html = String::from_utf8(read("content.html")).unwrap();
        assert!(html.contains(r#"<img src="attachments/diagram.svg" alt="diagram">"#), "{html}");
        let manifest: Value = serde_json::from_slice(&read("manifest.json")).unwrap();
        let part = &manifest["parts"][2];
        assert_eq!((part["name"].as_str(), part["mediaId"].as_str()), (Some("attachments/diagram.svg"), Some("m1")));
        assert_eq!(part["sha256"].as_str(), Some(sha256(&image).as_str()));
    }
}
