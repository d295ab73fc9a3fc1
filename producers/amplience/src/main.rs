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

const ABOUT: &str = "The gridsync Amplience producer: receives Amplience's signed webhooks (content \
    approved and published, payment confirmations and dispute resolutions recorded by people) and \
    publishes them as Avro events on Kafka, answering Amplience only once Kafka has them.";

fn main() -> std::process::ExitCode {
    gridsync_core::app::producer_main("amp-producer", ABOUT, source::run)
}
