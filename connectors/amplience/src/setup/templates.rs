//! Example message templates for every action the flows render
//! (`gridsync amplience setup --with-example-templates`): one content item per
//! action and locale in the template repository, delivery key
//! `templates/<action>/<locale>` (the flows' default configuration), approved.
//! A hub's editors then change them as they like; setup never overwrites one.

use serde_json::{json, Value};

/// The locales examples are written in.
pub const LOCALES: [&str; 3] = ["en-US", "en-GB", "de-DE"];

/// `(action, subject, body)` in English; German below.
const ENGLISH: &[(&str, &str, &str)] = &[
    (
        "order-confirmation",
        "Order {{ event.po_number }} confirmed",
        "Dear {{ customer }}, {{ partner.name }} confirms your order {{ event.po_number }}.\n\
         {% for line in event.lines %}{{ line.line_number }}: {{ line.quantity }} {{ line.unit_of_measure }} \
         {{ line.description or line.product_id }} at {{ line.unit_price }}\n{% endfor %}\
         Total: {{ event.total_amount }} {{ event.currency }}. Requested delivery: {{ event.requested_delivery_date }}.",
    ),
    (
        "customer-notification",
        "We have your order {{ event.po_number }}",
        "{{ customer }}: order {{ event.po_number }} ({{ event.lines | length }} lines) is with {{ partner.name }}.",
    ),
    (
        "delivery-content",
        "Shipment {{ event.shipment_id }}",
        "Carrier {{ event.carrier }}, tracking {{ event.tracking_number }}, for order(s) \
         {{ event.po_numbers | join(', ') }}.\n{% for line in event.lines %}{{ line.quantity }} {{ line.unit_of_measure }} \
         {{ line.description or line.product_id }}\n{% endfor %}",
    ),
    (
        "shipment-notification",
        "Your order {{ event.po_numbers | join(', ') }} is on its way",
        "Expected {{ event.estimated_delivery_date }}; track {{ event.tracking_number }} with {{ event.carrier }}.",
    ),
    (
        "delivery-notification",
        "Delivered: shipment {{ event.shipment_id }}",
        "Shipment {{ event.shipment_id }} for order {{ event.po_number }} was delivered at {{ event.delivered_at }}.",
    ),
    (
        "post-purchase-message",
        "How was your order {{ event.po_number }}?",
        "Tell {{ partner.name }} how your delivery of shipment {{ event.shipment_id }} went.",
    ),
    (
        "order-response-notification",
        "{{ partner.name }} answered PO {{ event.po_number }}: {{ event.status }}",
        "Order response for {{ event.po_number }}: {{ event.status }}. {{ event.note or '' }}",
    ),
    (
        "shipment-released",
        "{{ partner.name }} released shipment {{ event.shipment_id }}",
        "Orders {{ event.po_numbers | join(', ') }}: {{ event.lines | length }} lines shipped via {{ event.carrier }}.",
    ),
    (
        "document-exception-notification",
        "{{ event.document_type }} to {{ partner.name }}: {{ event.status }}",
        "Lens transaction {{ event.lens_transaction_id }} is {{ event.status }} ({{ event.lens_status_code }}). \
         {{ event.error_code or '' }} {{ event.error_message or '' }}",
    ),
    (
        "billing-communication",
        "Invoice {{ event.invoice_number }} from {{ partner.name }}",
        "Invoice {{ event.invoice_number }} of {{ event.invoice_date }}{% if event.po_number %} for order {{ event.po_number }}{% endif %}.\n\
         {% for line in event.lines %}{{ line.line_number }}: {{ line.quantity }} {{ line.unit_of_measure }} \
         {{ line.description or line.product_id }} at {{ line.unit_price }} = {{ line.line_amount }}\n{% endfor %}\
         Subtotal {{ figures.subtotal }}, tax {{ figures.tax }}, total {{ figures.total }} {{ event.currency }}.\n\
         Due {{ due_date }} ({{ event.payment_terms or 'terms on file' }}).",
    ),
    (
        "payment-reminder",
        "Invoice {{ event.invoice_number }}: payment {{ reminder.when }}",
        "{{ partner.name }}: {{ event.total_amount }} {{ event.currency }} for invoice {{ event.invoice_number }} \
         is {{ reminder.when }} (due {{ reminder.due_date }}).",
    ),
    (
        "invoice-rejected",
        "Invoice {{ event.invoice_number }} from {{ partner.name }} held: its figures do not add up",
        "{% for f in findings %}{{ f.what }}: stated {{ f.stated }}, expected {{ f.expected }}\n{% endfor %}\
         Not sent to the customer. Lines {{ figures.subtotal }}, tax {{ figures.tax }}, total {{ figures.total }}.",
    ),
    (
        "exception-task",
        "{{ task.kind }}: {{ event.document_type or 'document' }} {{ event.envelope.business_key }} ({{ partner.name }})",
        "{{ event.reason }}\n\nWhat to do: {{ task.guidance }}",
    ),
    (
        "exception-customer-notice",
        "Your {{ partner.name }} order {{ event.envelope.business_key }} may be delayed",
        "We are sorting out a problem with {{ event.envelope.business_key }}; we will update you shortly.",
    ),
];

fn german(action: &str) -> Option<(&'static str, &'static str)> {
    Some(match action {
        "order-confirmation" => (
            "Auftrag {{ event.po_number }} bestätigt",
            "Guten Tag {{ customer }}, {{ partner.name }} bestätigt Ihre Bestellung {{ event.po_number }}.\n\
             {% for line in event.lines %}{{ line.line_number }}: {{ line.quantity }} {{ line.unit_of_measure }} \
             {{ line.description or line.product_id }} zu {{ line.unit_price }}\n{% endfor %}\
             Summe: {{ event.total_amount }} {{ event.currency }}. Wunschtermin: {{ event.requested_delivery_date }}.",
        ),
        "customer-notification" => {
            ("Bestellung {{ event.po_number }} eingegangen", "{{ customer }}: Bestellung {{ event.po_number }} ist bei {{ partner.name }}.")
        }
        "delivery-content" => (
            "Sendung {{ event.shipment_id }}",
            "Spediteur {{ event.carrier }}, Sendungsnummer {{ event.tracking_number }}, Aufträge {{ event.po_numbers | join(', ') }}.",
        ),
        "shipment-notification" => (
            "Ihre Bestellung {{ event.po_numbers | join(', ') }} ist unterwegs",
            "Erwartet am {{ event.estimated_delivery_date }}.",
        ),
        "delivery-notification" => ("Zugestellt: Sendung {{ event.shipment_id }}", "Zugestellt am {{ event.delivered_at }}."),
        "post-purchase-message" => ("Wie war Ihre Bestellung {{ event.po_number }}?", "Ihre Meinung zählt, {{ partner.name }}."),
        "order-response-notification" => (
            "{{ partner.name }}: Antwort auf {{ event.po_number }}: {{ event.status }}",
            "{{ event.note or '' }}",
        ),
        "shipment-released" => (
            "{{ partner.name }}: Sendung {{ event.shipment_id }} freigegeben",
            "Aufträge {{ event.po_numbers | join(', ') }}, Spediteur {{ event.carrier }}.",
        ),
        "document-exception-notification" => (
            "{{ event.document_type }} an {{ partner.name }}: {{ event.status }}",
            "{{ event.error_code or '' }} {{ event.error_message or '' }}",
        ),
        _ => return None,
    })
}

/// An example template: its delivery key and the item to create.
pub struct ExampleTemplate {
    pub key: String,
    pub label: String,
    pub locale: &'static str,
    pub fields: serde_json::Map<String, Value>,
}

/// Every example template, for each action and locale.
pub fn examples() -> Vec<ExampleTemplate> {
    let mut all = Vec::new();
    for locale in LOCALES {
        for &(action, subject, body) in ENGLISH {
            let (subject, body) =
                if locale == "de-DE" { german(action).unwrap_or((subject, body)) } else { (subject, body) };
            let fields = json!({ "subject": subject, "body": body, "channel": "email" });
            all.push(ExampleTemplate {
                key: format!("templates/{action}/{locale}"),
                label: format!("Template {action} ({locale})"),
                locale,
                fields: fields.as_object().cloned().unwrap_or_default(),
            });
        }
    }
    all
}
