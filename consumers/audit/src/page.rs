//! The audit page, rendered on the server: plain HTML and a little CSS, no
//! scripts and no build step. Every value from the store is escaped.

use std::fmt::Write;

use chrono::DateTime;
use gridsync_store::audit::{AuditEntry, ContentUse, Lineage, OpenItem, OpenItems};

/// The page's style sheet, served at [`STYLE_PATH`] (the page's policy forbids inline styles).
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
form input[type=text]{width:28em;padding:.3em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top;font-size:.92em}
.src-TRADING_GRID{color:#0a6b35}.src-AMPLIENCE{color:#0654a8}.src-GRIDSYNC{color:#8a4500}code{font-size:.9em}
.refs a{margin-right:.5em}header{display:flex;justify-content:space-between;align-items:center;flex-wrap:wrap}
.error{color:#b00}nav.counts a{margin-right:1em;text-decoration:none}.badge{display:inline-block;min-width:1.4em;
padding:0 .4em;border-radius:.8em;background:#eee;text-align:center;font-weight:600}.badge.open{background:#fde2b8}
#timeline{list-style:none;padding-left:0}#timeline li{padding:.25em 0}#timeline li.depth-1{margin-left:2em}
#timeline li.depth-2{margin-left:4em}#timeline li.depth-3{margin-left:6em}#timeline li.depth-4{margin-left:8em}.status{font-size:.8em;padding:0 .4em;border-radius:.3em;background:#e8eef9}
.status-REJECTED,.status-FAILED,.status-DELIVERY_FAILED,.status-FA_REJECTED{background:#f9d6d6}
.status-ACCEPTED,.status-SENT,.status-DELIVERED,.status-FA_ACCEPTED{background:#d8f0dc}.export{font-size:.9em}
a{color:#0645ad}";

/// Where the style sheet is served.
pub const STYLE_PATH: &str = "/assets/audit.css";

/// The page's one script: each time in the reader's own time zone (without it, UTC).
pub const LOCAL_TIME: &str = "for (const t of document.querySelectorAll('time[datetime]')) {
  const d = new Date(t.getAttribute('datetime'));
  if (!isNaN(d)) {
    t.title = t.textContent;
    t.textContent = d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'long' });
  }
}
";

/// Where the script is served.
pub const LOCAL_TIME_PATH: &str = "/assets/local-time.js";

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

/// A time people read (`2026-12-07 11:40:12 UTC`), with the exact instant for machines.
fn time(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => format!(
            "<time datetime=\"{}\">{}</time>",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            t.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => "an unknown time".to_owned(),
    }
}

/// Partners' names from the partner profiles, by id.
#[derive(Debug, Clone, Default)]
pub struct Names(pub std::collections::BTreeMap<String, String>);

impl Names {
    /// `Acme Retail Inc (ACME)`, linked to the partner's page; an id the profiles do not name
    /// stays an id.
    fn partner(&self, id: &str) -> String {
        let label = match (id, self.0.get(id)) {
            ("ALL", _) => return "all partners".to_owned(),
            ("", _) => return "no partner".to_owned(),
            (id, Some(name)) => format!("{} ({})", escape(name), escape(id)),
            (id, None) => escape(id),
        };
        format!("<a class=\"partner\" href=\"/partners/{}\">{label}</a>", query_value(id))
    }
}

/// The open items' counts, each linking to its list: on every page.
fn counts(open: Option<&OpenItems>) -> String {
    let Some(open) = open else { return String::new() };
    let mut nav = String::from("<nav class=\"counts\" aria-label=\"open items\">");
    for (id, label, items) in [
        ("overdue", "overdue invoices", &open.overdue_invoices),
        ("unacknowledged", "unacknowledged documents", &open.unacknowledged_documents),
        ("unread", "unread packages", &open.unread_packages),
        ("unresolved", "unresolved tasks", &open.unresolved_tasks),
    ] {
        let class = if items.is_empty() { "badge" } else { "badge open" };
        let _ = write!(
            nav,
            "<a href=\"/#{id}\" id=\"count-{id}\"><span class=\"{class}\">{}</span> {label}</a>",
            items.len()
        );
    }
    nav.push_str("</nav>");
    nav
}

fn layout(title: &str, body: &str, open: Option<&OpenItems>) -> String {
    let counts = counts(open);
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <link rel=\"stylesheet\" href=\"{STYLE_PATH}\"><script src=\"{LOCAL_TIME_PATH}\" defer></script></head>\
         <body><header><h1><a href=\"/\">gridsync audit</a></h1>\
         {counts}<form method=\"post\" action=\"/logout\" id=\"logout\"><button type=\"submit\">Log out</button></form></header>\
         <main>{body}</main></body></html>",
        escape(title)
    )
}

/// The login form; `failed` says why the last attempt was refused; `sign_in` offers the
/// company's OpenID Connect provider.
pub fn login(failed: Option<&str>, sign_in: bool) -> String {
    let error = failed.map_or_else(String::new, |why| {
        format!("<p class=\"error\" id=\"login-error\" role=\"alert\">{}</p>", escape(why))
    });
    let sign_in = if sign_in {
        "<p><a id=\"sign-in\" href=\"/oidc/login\">Sign in with your company account</a></p><p>or</p>"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in: gridsync audit</title>\
         <link rel=\"stylesheet\" href=\"{STYLE_PATH}\"></head><body><main><h1>gridsync audit</h1>{error}{sign_in}\
         <form method=\"post\" action=\"/login\" id=\"login\"><label for=\"token\">Access token</label> \
         <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" required> \
         <button type=\"submit\">Log in</button></form>\
         <p>A token comes from whoever runs gridsync (<code>gridsync audit token --name you</code>).</p></main></body></html>"
    )
}

/// What was searched for: a reference, and the filters that narrow its timeline.
#[derive(Debug, Default)]
pub struct SearchForm<'a> {
    pub reference: Option<&'a str>,
    pub partner: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub flow: Option<u8>,
    /// Show every open item read, not the first of each list.
    pub all: bool,
    /// `YYYY-MM-DD`.
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
}

/// The search page; with a reference, the transaction's timeline and where its content went.
pub fn search(
    form: &SearchForm<'_>,
    lineage: Option<&Lineage>,
    uses: &[ContentUse],
    open: &OpenItems,
    names: &Names,
) -> String {
    let (reference, partner) = (form.reference, form.partner);
    let mut types = String::from("<option value=\"\">any</option>");
    for event_type in gridsync_schemas::EventType::ALL {
        let name = event_type.name();
        let selected = if form.event_type == Some(name) { " selected" } else { "" };
        let _ = write!(types, "<option{selected}>{name}</option>");
    }
    let mut flows = String::from("<option value=\"\">any</option>");
    for flow in crate::flows::flows() {
        let n = flow.number;
        let selected = if form.flow == Some(n) { " selected" } else { "" };
        let _ = write!(flows, "<option value=\"{n}\"{selected}>{n}: {}</option>", escape(&flow.name));
    }
    let mut body = format!(
        "<form method=\"get\" action=\"/\" id=\"search\"><label>PO, invoice, shipment, payment, file, content item or event id \
         <input type=\"text\" name=\"q\" id=\"q\" value=\"{}\"></label> <label>partner \
         <input type=\"text\" name=\"partner\" id=\"partner\" value=\"{}\" size=\"10\"></label> \
         <label>event type <select name=\"type\" id=\"type\">{types}</select></label> \
         <label>flow <select name=\"flow\" id=\"flow\">{flows}</select></label> \
         <label>from <input type=\"date\" name=\"from\" id=\"from\" value=\"{}\"></label> \
         <label>to <input type=\"date\" name=\"to\" id=\"to\" value=\"{}\"></label> \
         <button type=\"submit\" id=\"go\">Search</button></form>",
        escape(reference.unwrap_or("")),
        escape(partner.unwrap_or("")),
        escape(form.from.unwrap_or("")),
        escape(form.to.unwrap_or(""))
    );
    if let Some(lineage) = lineage {
        timeline(&mut body, lineage, partner, names);
    }
    if !uses.is_empty() {
        body.push_str("<h2>Content versions sent</h2><table id=\"content-uses\"><tr><th>version</th><th>partner</th><th>as</th><th>deliveries</th><th>first</th><th>last</th></tr>");
        for u in uses {
            let _ = write!(
                body,
                "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                u.content_version.map_or_else(|| "?".to_owned(), |v| v.to_string()),
                names.partner(&u.partner),
                escape(&u.action),
                u.deliveries,
                time(u.first_at),
                time(u.last_at)
            );
        }
        body.push_str("</table>");
    }
    if reference.is_none() {
        open_lists(&mut body, open, names, form.all);
    }
    layout(reference.map_or("gridsync audit", |r| r), &body, Some(open))
}

/// Links to a list's export, as CSV and as JSON.
fn export(body: &mut String, api: &str) {
    let _ = write!(
        body,
        "<p class=\"export\">Export: <a id=\"export-csv\" href=\"{api}&amp;format=csv\">CSV</a> · \
         <a id=\"export-json\" href=\"{api}\">JSON</a></p>"
    );
}

/// One event as a line of a list: when, what, whose, its status, what it used, its details.
fn event_line(e: &AuditEntry, names: &Names) -> String {
    let status = e
        .status
        .as_deref()
        .map_or_else(String::new, |s| format!(" <span class=\"status status-{0}\">{0}</span>", escape(s)));
    format!(
        "{seen} <b class=\"src-{src}\">{ty}</b> {partner}{status} — <span class=\"what\">{summary}</span>{content}{cause} \
         <a href=\"/events/{id}\">details</a>",
        id = escape(&e.event_id),
        ty = escape(&e.event_type),
        seen = time(e.seen_at),
        src = escape(&e.source_system),
        partner = names.partner(&e.partner),
        summary = escape(&e.summary),
        content = content_link(e),
        cause = cause_link(e),
    )
}

fn timeline(body: &mut String, lineage: &Lineage, partner: Option<&str>, names: &Names) {
    let _ = write!(
        body,
        "<h2>Timeline of {}</h2><p id=\"summary\">{} events{}; each document in business order, what gridsync did \
         about it beneath it</p>",
        escape(&lineage.reference),
        lineage.total,
        if lineage.truncated { " (more are linked; the rest were not followed)" } else { "" }
    );
    if lineage.events.items.is_empty() {
        body.push_str("<p id=\"nothing\">Nothing recorded references this.</p>");
        return;
    }
    let mut api = format!("/api/lineage?ref={}&amp;limit=500", query_value(&lineage.reference));
    if let Some(partner) = partner {
        let _ = write!(api, "&amp;partner={}", query_value(partner));
    }
    export(body, &api);
    body.push_str("<ol id=\"timeline\">");
    for placed in crate::order::causal(lineage.events.items.clone()) {
        let e = &placed.entry;
        let _ = write!(
            body,
            "<li class=\"step depth-{depth}\" id=\"e-{id}\" data-type=\"{ty}\">{line}</li>",
            depth = placed.depth,
            id = escape(&e.event_id),
            ty = escape(&e.event_type),
            line = event_line(e, names),
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

/// What a partner's page shows.
pub struct PartnerPage<'a> {
    pub partner: &'a str,
    /// Its exchanges in the window, a page of them.
    pub events: &'a gridsync_store::audit::Page<AuditEntry>,
    /// How long it took to acknowledge each document gridsync sent it in the window, in ms.
    pub latencies: &'a [i64],
    /// What is open with it.
    pub open: &'a OpenItems,
}

/// `ms` as people read a wait: `850 ms`, `12 s`, `4 min`, `3 h`.
fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 1_000 => format!("{ms} ms"),
        ms if ms < 120_000 => format!("{} s", ms / 1_000),
        ms if ms < 7_200_000 => format!("{} min", ms / 60_000),
        ms => format!("{} h", ms / 3_600_000),
    }
}

/// A partner's page: who it is, how fast it acknowledges, what is open with it, its exchanges
/// in the window, paged.
pub fn partner_page(page: &PartnerPage<'_>, header_open: &OpenItems, names: &Names) -> String {
    let (partner, events, open) = (page.partner, page.events, page.open);
    let mut body = format!("<h2>{}</h2>", names.partner(partner));
    let mut sorted = page.latencies.to_vec();
    sorted.sort_unstable();
    let _ = match (sorted.get(sorted.len() / 2), sorted.last()) {
        (Some(median), Some(slowest)) => write!(
            body,
            "<p id=\"ack-latency\">Acknowledgements of the last 30 days: {} documents acknowledged, half within {}, the \
             slowest after {}.</p>",
            sorted.len(),
            duration(*median),
            duration(*slowest)
        ),
        _ => write!(body, "<p id=\"ack-latency\">No acknowledgement of what gridsync sent in the last 30 days.</p>"),
    };
    open_lists(&mut body, open, names, true);
    body.push_str("<h2>Exchanges of the last 30 days</h2>");
    export(&mut body, &format!("/api/partners/{}?limit=500", query_value(partner)));
    body.push_str("<ol id=\"exchanges\">");
    for e in &events.items {
        let _ = write!(body, "<li class=\"step\" id=\"e-{}\">{}</li>", escape(&e.event_id), event_line(e, names));
    }
    body.push_str("</ol>");
    if let Some(next) = &events.next {
        let _ = write!(
            body,
            "<p><a id=\"next\" href=\"/partners/{}?cursor={}\">older exchanges</a></p>",
            query_value(partner),
            query_value(next)
        );
    }
    layout(partner, &body, Some(header_open))
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

/// How many of each open list are read (the header counts them; more shows as `500+`).
pub const OPEN_FETCHED: usize = 500;
/// How many of each open list a page shows, unless asked for all it read.
const OPEN_SHOWN: usize = 20;

fn open_lists(body: &mut String, open: &OpenItems, names: &Names, all: bool) {
    body.push_str("<h2>Open</h2>");
    for (id, title, items) in [
        ("unacknowledged", "Documents sent, not acknowledged", &open.unacknowledged_documents),
        ("unread", "Packages sent, not read", &open.unread_packages),
        ("unresolved", "Exception tasks not resolved", &open.unresolved_tasks),
        ("overdue", "Invoices overdue, no payment recorded", &open.overdue_invoices),
    ] {
        let _ = write!(body, "<h3>{title} ({})</h3><ul id=\"{id}\">", items.len());
        let shown = if all { items.len() } else { items.len().min(OPEN_SHOWN) };
        for item in &items[..shown] {
            open_item(body, item, names);
        }
        body.push_str("</ul>");
        if shown < items.len() {
            let _ = write!(body, "<p><a href=\"?all=1#{id}\">all {} of them</a></p>", items.len());
        }
    }
}

fn open_item(body: &mut String, item: &OpenItem, names: &Names) {
    let _ = write!(
        body,
        "<li><a href=\"/?q={}\">{}</a> {} since {} — {}</li>",
        query_value(&item.subject),
        escape(&item.subject),
        names.partner(&item.partner),
        time(item.since),
        escape(&item.summary)
    );
}

/// One event whole: its references (each a search) and its body.
pub fn event(e: &AuditEntry, open: &OpenItems, names: &Names) -> String {
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
        partner = names.partner(&e.partner),
        summary = escape(&e.summary),
        topic = escape(&e.topic),
        partition = e.partition,
        offset = e.offset,
        pretty = escape(&pretty),
    );
    layout(&e.event_id, &body, Some(open))
}

pub fn not_found(id: &str) -> String {
    layout("not found", &format!("<p>No event {} is recorded.</p>", escape(id)), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_text_and_urls() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(query_value("ACME/PO 1&x"), "ACME%2FPO%201%26x");
    }

    /// A long open list shows its first page and a link to all of it; the header counts all.
    #[test]
    fn open_lists_show_a_page_and_link_to_the_rest() {
        let item = |n: usize| OpenItem {
            event_id: format!("e{n}"),
            partner: "ACME".into(),
            subject: format!("ACME_PKG_{n}.zip"),
            summary: "sent".into(),
            since: 1_796_000_000_000,
        };
        let open = OpenItems { unread_packages: (0..25).map(item).collect(), ..OpenItems::default() };
        let names = Names::default();
        let mut first = String::new();
        open_lists(&mut first, &open, &names, false);
        assert_eq!(first.matches("ACME_PKG_").count(), 2 * OPEN_SHOWN, "{first}");
        assert!(first.contains("all 25 of them"), "{first}");
        let mut all = String::new();
        open_lists(&mut all, &open, &names, true);
        assert_eq!(all.matches("ACME_PKG_").count(), 2 * 25);
        assert!(counts(Some(&open)).contains(">25</span> unread packages"));
    }
}
