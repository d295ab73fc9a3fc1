//! The Amplience producer: signed Amplience webhooks (workflow changes,
//! publishes, payment confirmations, dispute resolutions) into Avro events,
//! acknowledged to Amplience only once Kafka has them.

mod args;
mod mapping;
mod receiver;
mod rejected;
mod resolve;
mod source;
mod telemetry;

fn main() -> std::process::ExitCode {
    gridsync_core::app::producer_main("amp-producer", 9465, source::run)
}
