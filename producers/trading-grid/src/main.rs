//! The Trading Grid producer: publishes what arrives from Trading Grid as Avro
//! events. Today's source is the inbound mailbox (a local folder an AS2/SFTP
//! gateway writes); SFTP and Lens polling come next.

mod inbound;
mod telemetry;

fn main() -> std::process::ExitCode {
    gridsync_core::app::producer_main("tg-producer", 9464, inbound::run)
}
