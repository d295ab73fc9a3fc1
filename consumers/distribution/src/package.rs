//! A partner-content package: one ZIP per content version and partner, with
//! a manifest (what it is, for whom, which version, what it replaces, the
//! SHA-256 of every part), the content as published (JSON) and rendered
//! (HTML). Built deterministically (fixed entry times, sorted fields), so
//! writing it again after a crash yields the same bytes under the same name.

use std::io::Write;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zip::{write::SimpleFileOptions, CompressionMethod, DateTime, ZipWriter};

/// What a package carries.
#[derive(Debug, Clone)]
pub struct Package<'a> {
    pub content_item_id: &'a str,
    pub version: i64,
    /// The content kind (`TRADING_TERMS`, ...).
    pub kind: &'a str,
    pub title: &'a str,
    pub locale: Option<&'a str>,
    pub partner: &'a str,
    pub read_confirmation_required: bool,
    /// The package of an older version this one replaces: `(version, file name)`.
    pub replaces: Option<(i64, String)>,
    /// The content's body as published, JSON.
    pub body: &'a str,
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

/// The content as a page: its title and each field (text as paragraphs, lists as lists).
fn render_html(title: &str, body: &Value) -> String {
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title></head>\n<body><h1>{0}</h1>\n",
        escape(title)
    );
    if let Some(fields) = body.as_object() {
        for (name, value) in fields.iter().filter(|(name, _)| !name.starts_with('_') && *name != "title") {
            html.push_str(&format!("<h2>{}</h2>\n", escape(name)));
            match value {
                Value::String(text) => html.push_str(&format!("<p>{}</p>\n", escape(text))),
                Value::Array(items) => {
                    html.push_str("<ul>\n");
                    for item in items {
                        let text = item.as_str().map_or_else(|| item.to_string(), str::to_owned);
                        html.push_str(&format!("<li>{}</li>\n", escape(&text)));
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

/// The package's bytes.
pub fn build(package: &Package<'_>) -> Result<Vec<u8>, zip::result::ZipError> {
    let body: Value = serde_json::from_str(package.body).unwrap_or(Value::Null);
    let content = serde_json::to_vec_pretty(&body).unwrap_or_default();
    let html = render_html(package.title, &body).into_bytes();
    let part = |name: &str, bytes: &[u8]| json!({ "name": name, "bytes": bytes.len(), "sha256": sha256(bytes) });
    let manifest = json!({
        "package": file_name(package.partner, package.content_item_id, package.version),
        "contentItemId": package.content_item_id,
        "version": package.version,
        "contentType": package.kind,
        "title": package.title,
        "locale": package.locale,
        "partner": package.partner,
        "readConfirmationRequired": package.read_confirmation_required,
        "replaces": package.replaces.as_ref().map(|(version, file)| json!({ "version": version, "package": file })),
        "parts": [part("content.json", &content), part("content.html", &html)],
    });
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default());
    for (name, bytes) in [("manifest.json", &manifest), ("content.json", &content), ("content.html", &html)] {
        zip.start_file(name, options)?;
        zip.write_all(bytes).map_err(zip::result::ZipError::Io)?;
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_names_itself_and_holds_what_its_manifest_says() {
        let package = Package {
            content_item_id: "c-1",
            version: 3,
            kind: "TRADING_TERMS",
            title: "Terms <2027>",
            locale: Some("en-GB"),
            partner: "ACME",
            read_confirmation_required: true,
            replaces: Some((2, file_name("ACME", "c-1", 2))),
            body: r#"{"title":"Terms","sections":["Pay in 30 days"]}"#,
        };
        let bytes = build(&package).unwrap();
        assert_eq!(bytes, build(&package).unwrap(), "the same bytes every time");
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
}
