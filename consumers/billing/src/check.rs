//! An invoice is checked before it is communicated: each line's quantity ×
//! price against its amount, the lines and tax against the stated total, and
//! the lines against the purchase order it names when gridsync has seen it.
//! Exact decimals throughout; `tolerance` absorbs partners' rounding.

use gridsync_schemas::events::{InvoiceReceived, OrderLine};
use rust_decimal::Decimal;
use serde::Serialize;

/// The invoice's figures as gridsync computes them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub subtotal: String,
    pub tax: String,
    /// True when the invoice states no tax amount and the tax is the total less the lines.
    pub tax_implied: bool,
    pub total: String,
}

/// One figure that does not add up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub what: String,
    pub stated: String,
    pub expected: String,
}

/// Checks `invoice`, against `order` (the purchase order's lines) when known.
pub fn check(invoice: &InvoiceReceived, order: Option<&[OrderLine]>, tolerance: Decimal) -> (Figures, Vec<Finding>) {
    let mut findings = Vec::new();
    let differs = |a: Decimal, b: Decimal| (a - b).abs() > tolerance;
    let mut subtotal = Decimal::ZERO;
    for line in &invoice.lines {
        let quantity = line.quantity.value();
        let computed = line.unit_price.map(|p| quantity * p.value());
        match (line.line_amount.map(|a| a.value()), computed) {
            (Some(stated), Some(computed)) if differs(stated, computed) => findings.push(Finding {
                what: format!("line {} ({}): quantity × price", line.line_number, line.product_id),
                stated: money(stated),
                expected: money(computed),
            }),
            _ => {}
        }
        subtotal += line.line_amount.map(|a| a.value()).or(computed).unwrap_or_default();
    }
    let total = invoice.total_amount.value();
    let (tax, tax_implied) = match invoice.tax_amount {
        Some(tax) => (tax.value(), false),
        None => (total - subtotal, true),
    };
    if tax_implied && tax < -tolerance {
        findings.push(Finding {
            what: "total below the sum of the lines (no tax stated)".into(),
            stated: money(total),
            expected: money(subtotal),
        });
    } else if !tax_implied && differs(subtotal + tax, total) {
        findings.push(Finding {
            what: "lines plus tax against the stated total".into(),
            stated: money(total),
            expected: money(subtotal + tax),
        });
    }
    if let Some(order) = order {
        for line in &invoice.lines {
            let Some(ordered) = order.iter().find(|o| same_product(o, line)) else {
                findings.push(Finding {
                    what: format!("line {} ({}): not on the purchase order", line.line_number, line.product_id),
                    stated: line.quantity.value().normalize().to_string(),
                    expected: "0".into(),
                });
                continue;
            };
            if line.quantity.value() > ordered.quantity.value() {
                findings.push(Finding {
                    what: format!("line {} ({}): quantity above the order", line.line_number, line.product_id),
                    stated: line.quantity.value().normalize().to_string(),
                    expected: ordered.quantity.value().normalize().to_string(),
                });
            }
            if let (Some(price), Some(agreed)) = (line.unit_price, ordered.unit_price) {
                if differs(price.value(), agreed.value()) {
                    findings.push(Finding {
                        what: format!("line {} ({}): unit price against the order", line.line_number, line.product_id),
                        stated: money(price.value()),
                        expected: money(agreed.value()),
                    });
                }
            }
        }
    }
    let figures = Figures { subtotal: money(subtotal), tax: money(tax), tax_implied, total: money(total) };
    (figures, findings)
}

/// An invoiced line is an ordered one with the same product id; a line that carries none is
/// matched by its line number with an ordered line that carries none either.
fn same_product(ordered: &OrderLine, invoiced: &OrderLine) -> bool {
    if invoiced.product_id.is_empty() {
        ordered.product_id.is_empty() && ordered.line_number == invoiced.line_number
    } else {
        ordered.product_id == invoiced.product_id
    }
}

/// Money as people read it: at least two decimal places, never rounded.
pub fn money(value: Decimal) -> String {
    let value = value.normalize();
    if value.scale() <= 2 {
        format!("{value:.2}")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_schemas::{samples::sample, Event, EventType};

    fn invoice() -> InvoiceReceived {
        match sample(EventType::InvoiceReceived, "ACME", 1) {
            // Its lines come to 3604.80; with its 721.08 of tax, 4325.88.
            Event::InvoiceReceived(invoice) => invoice,
            _ => unreachable!(),
        }
    }

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn an_invoice_that_adds_up_has_no_findings() {
        let invoice = invoice();
        let (figures, findings) = check(&invoice, None, dec("0.01"));
        assert_eq!(findings, []);
        assert_eq!(
            (figures.subtotal.as_str(), figures.tax.as_str(), figures.total.as_str()),
            ("3604.80", "721.08", "4325.88")
        );
    }

    #[test]
    fn a_wrong_line_total_and_order_are_found_with_their_figures() {
        let mut invoice = invoice();
        invoice.lines[1].line_amount = Some("999.99".parse().unwrap());
        invoice.total_amount = "4400.00".parse().unwrap();
        let mut order = invoice.lines.clone();
        order[0].unit_price = Some("19.00".parse().unwrap());
        order[2].quantity = "10".parse().unwrap();
        order.remove(4);
        let (_, findings) = check(&invoice, Some(&order), dec("0.01"));
        let whats: Vec<&str> = findings.iter().map(|f| f.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "line 2 (0001234500002): quantity × price",
                "lines plus tax against the stated total",
                "line 1 (0001234500001): unit price against the order",
                "line 3 (0001234500003): quantity above the order",
                "line 5 (0001234500005): not on the purchase order",
            ]
        );
        assert_eq!((findings[0].stated.as_str(), findings[0].expected.as_str()), ("999.99", "480.24"));
        assert_eq!(findings[1].expected, "4845.63");
    }

    #[test]
    fn lines_without_product_ids_are_matched_by_line_number_never_with_each_other() {
        let mut invoice = invoice();
        for line in &mut invoice.lines {
            line.product_id.clear();
        }
        let mut order = invoice.lines.clone();
        order[3].quantity = "1".parse().unwrap();
        order.remove(4);
        let (_, findings) = check(&invoice, Some(&order), dec("0.01"));
        let whats: Vec<&str> = findings.iter().map(|f| f.what.as_str()).collect();
        assert_eq!(whats, ["line 4 (): quantity above the order", "line 5 (): not on the purchase order"]);
    }

    #[test]
    fn without_a_stated_tax_the_difference_is_the_tax_unless_negative() {
        let mut invoice = invoice();
        invoice.tax_amount = None;
        let (figures, findings) = check(&invoice, None, dec("0.01"));
        assert!(findings.is_empty() && figures.tax_implied);
        assert_eq!(figures.tax, "721.08");
        invoice.total_amount = "3000".parse().unwrap();
        assert_eq!(check(&invoice, None, dec("0.01")).1.len(), 1);
    }
}
