//! The audit page, rendered on the server: plain HTML and a little CSS, no
//! scripts and no build step. Every value from the store is escaped.

use std::fmt::Write;

use chrono::DateTime;
use gridsync_store::audit::{AuditEntry, ContentUse, Lineage, OpenItem, OpenItems};

/// The page's style sheet, served at [`STYLE_PATH`] (the page's policy forbids inline styles).
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
form input[type=text]{width:28em;padding:.3em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top;font-size:.92em}
.src-TRADING_GRID{color:#0b5}.src-AMPLIENCE{color:#06c}.src-GRIDSYNC{color:#a50}code{font-size:.9em}
.refs a{margin-right:.5em}header{display:flex;justify-content:space-between;align-items:center}
.error{color:#b00}";

/// Where the style sheet is served.
pub const STYLE_PATH: &str = "/assets/audit.css";

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// RFC 3986's unreserved characters stay as they are in a query value; the rest is encoded.
const QUERY_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `text` safe inside a URL query value.
fn query_value(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, QUERY_VALUE).to_string()
}

fn time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <link rel=\"stylesheet\" href=\"{STYLE_PATH}\"></head>\
         <body><header><h1><a href=\"/\">gridsync audit</a></h1>\
         <form method=\"post\" action=\"/logout\" id=\"logout\"><button type=\"submit\">Log out</button></form></header>\
         <main>{body}</main></body></html>",
        escape(title)
    )
}

/// The login form; `failed` when a token was just refused.
pub fn login(failed: bool) -> String {
    let error =
        if failed { "<p class=\"error\" id=\"login-error\" role=\"alert\">That token is not valid.</p>" } else { "" };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in: gridsync audit</title>\
         <link rel=\"stylesheet\" href=\"{STYLE_PATH}\"></head><body><main><h1>gridsync audit</h1>{error}\
         <form method=\"post\" action=\"/login\" id=\"login\"><label for=\"token\">Access token</label> \
         <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" required> \
         <button type=\"submit\">Log in</button></form>\
         <p>A token comes from whoever runs gridsync (<code>gridsync audit token --name you</code>).</p></main></body></html>"
    )
}

/// The search page; with a reference, the transaction's timeline and where its content went.
pub fn search(
    reference: Option<&str>,
    partner: Option<&str>,
    lineage: Option<&Lineage>,
    uses: &[ContentUse],
    open: &OpenItems,
) -> String {
    let mut body = format!(
        "<form method=\"get\" action=\"/\" id=\"search\"><label>PO, invoice, shipment, payment, file, content item or event id \
         <input type=\"text\" name=\"q\" id=\"q\" value=\"{}\"></label> <label>partner \
         <input type=\"text\" name=\"partner\" id=\"partner\" value=\"{}\" size=\"10\"></label> \
         <button type=\"submit\" id=\"go\">Search</button></form>",
        escape(reference.unwrap_or("")),
        escape(partner.unwrap_or(""))
    );
    if let Some(lineage) = lineage {
        timeline(&mut body, lineage);
    }
    if !uses.is_empty() {
        body.push_str("<h2>Content versions sent</h2><table id=\"content-uses\"><tr><th>version</th><th>partner</th><th>as</th><th>deliveries</th><th>first</th><th>last</th></tr>");
        for u in uses {
            let _ = write!(
                body,
                "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                u.content_version.map_or_else(|| "?".to_owned(), |v| v.to_string()),
                escape(&u.partner),
                escape(&u.action),
                u.deliveries,
                time(u.first_at),
                time(u.last_at)
            );
        }
        body.push_str("</table>");
    }
    if reference.is_none() {
        open_lists(&mut body, open);
    }
    layout(reference.map_or("gridsync audit", |r| r), &body)
}

fn timeline(body: &mut String, lineage: &Lineage) {
    let _ = write!(
        body,
        "<h2>Timeline of {}</h2><p id=\"summary\">{} events{}</p>",
        escape(&lineage.reference),
        lineage.total,
        if lineage.truncated { " (more are linked; the rest were not followed)" } else { "" }
    );
    if lineage.events.items.is_empty() {
        body.push_str("<p id=\"nothing\">Nothing recorded references this.</p>");
        return;
    }
    body.push_str("<ol id=\"timeline\">");
    for e in &lineage.events.items {
        let _ = write!(
            body,
            "<li class=\"step\" id=\"e-{id}\" data-type=\"{ty}\"><time title=\"at its source: {at}\">{seen}</time> <b class=\"src-{src}\">{ty}</b> \
             <span class=\"partner\">{partner}</span> — <span class=\"what\">{summary}</span>{content}{cause} \
             <a href=\"/events/{id}\">details</a></li>",
            id = escape(&e.event_id),
            ty = escape(&e.event_type),
            at = time(e.occurred_at),
            seen = time(e.seen_at),
            src = escape(&e.source_system),
            partner = escape(&e.partner),
            summary = escape(&e.summary),
            content = content_link(e),
            cause = cause_link(e),
        );
    }
    body.push_str("</ol>");
    if let Some(next) = &lineage.events.next {
        let _ = write!(
            body,
            "<p><a id=\"next\" href=\"/?q={}&amp;cursor={}\">later events</a></p>",
            query_value(&lineage.reference),
            query_value(next)
        );
    }
}

/// The approved content a side effect used, linked to where else it went.
fn content_link(e: &AuditEntry) -> String {
    match (&e.content_item_id, e.content_version) {
        (Some(id), Some(v)) => {
            format!(" <a class=\"content\" href=\"/?q={}\">content {} v{v}</a>", query_value(id), escape(id))
        }
        _ => String::new(),
    }
}

/// A side effect links to the event that caused it (on the same timeline).
fn cause_link(e: &AuditEntry) -> String {
    if e.event_type != "DeliveryPerformed" {
        return String::new();
    }
    let source = serde_json::from_str::<serde_json::Value>(&e.body)
        .ok()
        .and_then(|b| b.get("source_event_id").and_then(|s| s.as_str()).map(str::to_owned));
    source.map_or_else(String::new, |s| format!(" <a class=\"cause\" href=\"#e-{0}\">caused by</a>", escape(&s)))
}

fn open_lists(body: &mut String, open: &OpenItems) {
    body.push_str("<h2>Open</h2>");
    for (id, title, items) in [
        ("unacknowledged", "Documents sent, not acknowledged", &open.unacknowledged_documents),
        ("unread", "Packages sent, not read", &open.unread_packages),
        ("unresolved", "Exception tasks not resolved", &open.unresolved_tasks),
        ("overdue", "Invoices overdue, no payment recorded", &open.overdue_invoices),
    ] {
        let _ = write!(body, "<h3>{title} ({})</h3><ul id=\"{id}\">", items.len());
        for item in items {
            open_item(body, item);
        }
        body.push_str("</ul>");
    }
}

fn open_item(body: &mut String, item: &OpenItem) {
    let _ = write!(
        body,
        "<li><a href=\"/?q={}\">{}</a> {} since {} — {}</li>",
        query_value(&item.subject),
        escape(&item.subject),
        escape(&item.partner),
        time(item.since),
        escape(&item.summary)
    );
}

/// One event whole: its references (each a search) and its body.
pub fn event(e: &AuditEntry) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(&e.body)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| e.body.clone());
    let mut refs = String::new();
    for r in &e.refs {
        let _ = write!(refs, "<a href=\"/?q={}\">{}: {}</a>", query_value(&r.value), escape(&r.kind), escape(&r.value));
    }
    let body = format!(
        "<h2>{ty} {id}</h2><p>at its source {at}, seen by gridsync {seen} · {partner} · {summary}</p><p>Kafka: {topic} [{partition}] @ {offset}</p>\
         <p class=\"refs\">{refs}</p><pre id=\"body\">{pretty}</pre>",
        ty = escape(&e.event_type),
        id = escape(&e.event_id),
        at = time(e.occurred_at),
        seen = time(e.seen_at),
        partner = escape(&e.partner),
        summary = escape(&e.summary),
        topic = escape(&e.topic),
        partition = e.partition,
        offset = e.offset,
        pretty = escape(&pretty),
    );
    layout(&e.event_id, &body)
}

pub fn not_found(id: &str) -> String {
    layout("not found", &format!("<p>No event {} is recorded.</p>", escape(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_text_and_urls() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(query_value("ACME/PO 1&x"), "ACME%2FPO%201%26x");
    }
}
