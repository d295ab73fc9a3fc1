//! `gridsync demo`: sample traffic through the real producer path.

use std::process::ExitCode;

use gridsync_core::{config::KafkaArgs, kafka::EventProducer, telemetry::Metrics};
use gridsync_schemas::{samples::sample, EventType, Timestamp};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How many events of each type.
    #[arg(long, default_value_t = 3)]
    count: u64,
    /// Trading partner id of the sample events.
    #[arg(long, default_value = "ACME")]
    partner: String,
    /// The first sample's number (its control numbers, PO and invoice numbers follow from it):
    /// high by default, so the samples' interchange numbers never meet those gridsync allocates
    /// for the documents it sends the partner (an acknowledgement would then seem to answer one).
    #[arg(long, default_value_t = 900_000_001)]
    first: u64,
}

pub async fn run(args: DemoArgs, kafka: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let producer = EventProducer::new(kafka, Metrics::new("gridsync-demo")?)?;
    let mut published = 0;
    for seq in args.first..args.first + args.count {
        for event_type in EventType::ALL {
            let mut event = sample(event_type, &args.partner, seq);
            // Learned of now, as a producer would stamp it: the flows' reports time from here.
            event.envelope_mut().ingested_at = Timestamp::now();
            let delivered = producer.publish(&event, None).await?;
            outln!("{} -> {}[{}]@{}", event_type.name(), delivered.topic, delivered.partition, delivered.offset);
            published += 1;
        }
    }
    outln!("published {published} events");
    Ok(ExitCode::SUCCESS)
}
