//! amp-sim as it fills: content items created through the Management API (each validated
//! against its content type's schema, its delivery key checked against every other item's)
//! into a hub set up as gridsync sets one up, timed per tenth; the last tenth should go as fast
//! as the first, so a benchmark of gridsync against amp-sim measures gridsync, not the simulator.
//!
//! `cargo bench -p gridsync-tests --bench amp_sim_fill` (`GRIDSYNC_BENCH_ITEMS`, default 100,000).

use std::time::Instant;

use futures::StreamExt;
use gridsync_amp_sim::{SimConfig, Simulator};
use gridsync_amplience::{DeliveryKey, NewContentItem};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let items: u64 = std::env::var("GRIDSYNC_BENCH_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let config = SimConfig::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let sim =
        Simulator::start(config.clone(), tokio::net::TcpListener::bind("127.0.0.1:0").await?, stop.clone()).await?;
    gridsync_tests::set_up_hub(&sim.url(), &config.hub_id, &config.repositories, None).await?;
    let client = gridsync_tests::amp_sim_client(&sim.url(), &config.hub_id, ("gridsync", "gridsync-secret"))?;
    let repository = &config.repositories[0];
    let item = |n: u64| -> anyhow::Result<NewContentItem> {
        let fields = json!({
            "subject": format!("Order {n} confirmed"), "body": "Thank you", "channel": "email",
            "action": "order-confirmation", "recipient": "orders@acme.example", "locale": "en-US",
            "gridsync": {
                "sourceEventId": format!("e{n}"), "sourceEventType": "PurchaseOrderReceived",
                "correlationId": format!("ACME/PO/{n}"), "tradingPartnerId": "ACME", "businessKey": n.to_string(),
                "idempotencyKey": format!("e{n}/order-confirmation"),
                "template": { "key": "templates/order-confirmation/en-US", "id": "t1", "version": 2 },
            },
        });
        Ok(NewContentItem {
            label: format!("order-confirmation ACME {n}"),
            schema: "https://schemas.gridsync.dev/notification.json".into(),
            delivery_key: Some(DeliveryKey::derive("gridsync/order-confirmation/ACME", [n.to_string().as_str()])?),
            folder_id: None,
            locale: Some("en-US".into()),
            fields: fields.as_object().cloned().unwrap_or_default(),
        })
    };
    let tenth = (items / 10).max(1);
    let mut rates = Vec::new();
    for slice in 0..10 {
        let started = Instant::now();
        let created: Vec<_> = futures::stream::iter(slice * tenth..(slice + 1) * tenth)
            .map(|n| {
                let client = &client;
                async move { client.create_item(repository, &item(n)?).await.map_err(anyhow::Error::from) }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        created.into_iter().collect::<Result<Vec<_>, _>>()?;
        rates.push(tenth as f64 / started.elapsed().as_secs_f64());
    }
    let started = Instant::now();
    let page = client.list_items(repository, (items / 100).saturating_sub(1) as u32, 100).await?;
    let last_page = started.elapsed();
    stop.cancel();
    println!("amp_sim_fill: {} items created through the Management API, 32 at a time, each validated", 10 * tenth);
    println!(
        "  first tenth {:>8.0} items/s, last tenth {:>8.0} items/s (last / first {:.2}); the last page of 100 ({} items) in {:.1} ms",
        rates[0],
        rates[9],
        rates[9] / rates[0],
        page.items.len(),
        last_page.as_secs_f64() * 1000.0
    );
    Ok(())
}
