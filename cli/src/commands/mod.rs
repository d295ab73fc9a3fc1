pub mod acls;
pub mod amplience;
pub mod audit;
pub mod catalog;
pub mod demo;
pub mod dlq;
pub mod edi;
pub mod groups;
pub mod replay;
pub mod report;
pub mod schemas;
pub mod status;
pub mod strimzi;
pub mod topics;

/// A consumer's name, one of the catalog's (listed in `--help`, checked when parsed).
pub fn consumer_name() -> clap::builder::PossibleValuesParser {
    let catalog = gridsync_schemas::catalog::catalog();
    clap::builder::PossibleValuesParser::new(catalog.iter().flat_map(|c| c.consumers.iter().map(|c| c.name.as_str())))
}

/// A consumer's or producer's name, one of the catalog's with a dead-letter topic.
pub fn dead_letter_owner() -> clap::builder::PossibleValuesParser {
    let catalog = gridsync_schemas::catalog::catalog();
    let producers = catalog.iter().flat_map(|c| c.producers.iter().filter(|p| p.dead_letter_topic.is_some()));
    let consumers = catalog.iter().flat_map(|c| c.consumers.iter().map(|c| c.name.as_str()));
    clap::builder::PossibleValuesParser::new(consumers.chain(producers.map(|p| p.name.as_str())))
}

/// A topic name as given on the command line, with the topic prefix unless it has it already.
pub fn prefixed(prefix: &str, topic: &str) -> String {
    if topic.starts_with(prefix) {
        topic.to_owned()
    } else {
        format!("{prefix}{topic}")
    }
}
