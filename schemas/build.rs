//! Generates the Rust event types from the `.avsc` files in `avro/`.
//!
//! The `.avsc` files are the single source of truth: the structs, enums and the
//! `Event`/`EventType` dispatch are generated here on every build, so the Rust
//! types cannot drift from the contract.

// A build script that cannot run is a build error: its panics are that error's message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "build/inline.rs"]
mod inline;
#[path = "build/rust_gen.rs"]
mod rust_gen;

use std::{
    collections::BTreeMap,
    env, fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let avro = manifest.join("avro");
    println!("cargo:rerun-if-changed=avro");
    println!("cargo:rerun-if-changed=build");

    let common: BTreeMap<String, Value> = read_dir_sorted(&avro.join("common"))
        .into_iter()
        .map(|(_, json)| (inline::full_name(&json, None), json))
        .collect();

    let mut events = Vec::new();
    for (stem, json) in read_dir_sorted(&avro.join("events")) {
        let inlined =
            inline::inline_named_types(&json, &common).unwrap_or_else(|e| panic!("avro/events/{stem}.avsc: {e}"));
        let name = inline::full_name(&inlined, None);
        assert_eq!(
            name,
            format!("gridsync.events.{stem}"),
            "avro/events/{stem}.avsc must define the record gridsync.events.{stem}"
        );
        let history = read_dir_sorted(&avro.join("history").join(&stem))
            .into_iter()
            .map(|(file, json)| (parse_version(&stem, &file), json.to_string()))
            .collect::<Vec<_>>();
        events.push(rust_gen::EventSchema { name: stem, current: inlined, history });
    }

    let code = rust_gen::generate(&events).unwrap_or_else(|e| panic!("code generation: {e}"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("generated.rs");
    fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// Every `*.avsc` in `dir` as (file stem, parsed JSON), sorted by name; an absent dir is empty.
fn read_dir_sorted(dir: &Path) -> Vec<(String, Value)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            (stem, json)
        })
        .collect()
}

/// History files are named `v<N>.avsc`.
fn parse_version(event: &str, stem: &str) -> u32 {
    stem.strip_prefix('v')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("avro/history/{event}/{stem}.avsc: history files are named v<N>.avsc"))
}
