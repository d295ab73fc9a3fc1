//! The Trading Grid producer: publishes what arrives from Trading Grid (EDI
//! files in the inbound mailbox, Lens status changes) as Avro events.
//!
//! The connector itself (EDI parsing, mailboxes, Lens polling) lands with its
//! own issue; until then the binary connects, reports ready and waits.

fn main() -> std::process::ExitCode {
    gridsync_core::app::producer_main("tg-producer", 9464, gridsync_core::app::await_connector)
}
