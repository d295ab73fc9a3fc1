//! Upgrading the store: a database left by the previous release (every migration but the
//! newest, with its data) is brought up to date by `Store::connect`, and what it held is
//! read the same afterwards. On a SQLite file and on PostgreSQL.

// Tests state what they expect with unwrap: a failure is their message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;

use gridsync_store::Store;
use sqlx::{any::AnyPoolOptions, migrate::Migrator};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `url`'s database as the previous release left it: its migrations applied, and data in its tables.
async fn previous_release(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(1).connect(url).await.unwrap();
    let all: Migrator = sqlx::migrate!("./migrations");
    let newest = all.migrations.iter().map(|m| m.version).max().unwrap();
    let previous = Migrator {
        migrations: Cow::Owned(all.migrations.iter().filter(|m| m.version < newest).cloned().collect()),
        ..sqlx::migrate!("./migrations")
    };
    previous.run(&pool).await.unwrap();
    for statement in [
        "INSERT INTO published_events (event_id, source, published_at) VALUES ('evt-old-1', 'tg', 1795000000000)",
        "INSERT INTO control_numbers (partner, standard, last_used) VALUES ('ACME', 'X12', 41)",
        "INSERT INTO webhook_deliveries (delivery_id, event_id, outcome, recorded_at) VALUES ('d-1', 'evt-amp-1', 'published', 1795000000000)",
        "INSERT INTO watermarks (name, value, updated_at) VALUES ('lens', '2026-12-01T00:00:00Z', 1795000000000)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

async fn upgraded_store_keeps_what_the_previous_release_wrote(url: &str) {
    previous_release(url).await;
    let store = Store::connect(url).await.unwrap();
    let published = store.published_events();
    assert!(published.contains("evt-old-1").await.unwrap(), "published events survive");
    assert_eq!(store.control_numbers().next("ACME", "X12").await.unwrap(), 42, "numbering goes on, never repeats");
    let delivery = store.webhook_deliveries().get("d-1").await.unwrap().unwrap();
    assert_eq!(delivery.event_id, "evt-amp-1");
    assert_eq!(store.watermarks().get("lens").await.unwrap().as_deref(), Some("2026-12-01T00:00:00Z"));
    // The newest migration's table is there and works.
    let received = store.received_controls();
    let acknowledged = [("evt-new".to_owned(), Some("ACME|GRIDSYNC|1|1|1|850".to_owned()))];
    received.record_acknowledged(&acknowledged, "tg").await.unwrap();
    let last = received.last_all(&["ACME|GRIDSYNC|1|1|1|850".to_owned()]).await.unwrap();
    assert_eq!(last.values().map(String::as_str).collect::<Vec<_>>(), ["evt-new"]);
    // Connecting again applies nothing twice.
    drop(store);
    Store::connect(url).await.unwrap();
}

#[tokio::test]
async fn a_sqlite_file_of_the_previous_release_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("gridsync.db").display());
    upgraded_store_keeps_what_the_previous_release_wrote(&url).await;
}

#[tokio::test]
async fn a_postgresql_schema_of_the_previous_release_is_upgraded_in_place() {
    let base = std::env::var("GRIDSYNC_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = Store::connect(&base).await.expect("PostgreSQL on 127.0.0.1:5432 (deploy/test.sh checks it)");
    admin.execute_unchecked(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    upgraded_store_keeps_what_the_previous_release_wrote(&format!("{base}?options=-c%20search_path%3D{schema}")).await;
}
