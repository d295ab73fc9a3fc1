//! The mailbox partner: what Trading Grid and a trading partner do with the
//! files gridsync writes to the outbound mailbox. Each file is picked up
//! (moved to `.picked-up/` with its checksum, which is verified), recorded in
//! Lens as delivered, and every EDI interchange that expects one is answered
//! with an accepting 997/CONTRL dropped into the inbound mailbox — after
//! which Lens shows the functional ack as accepted. Files that are not EDI
//! (content packages) are delivered with a delivery receipt.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use chrono::{SecondsFormat, Utc};
use gridsync_edi::{parse, write::functional_ack, write::AckVerdict, Interchange, Standard};
use gridsync_trading_grid::lens::LensTransaction;
use tokio_util::sync::CancellationToken;

use crate::Ledger;

#[derive(Debug, Clone)]
pub struct PartnerConfig {
    /// gridsync's outbound mailbox, where the partner picks files up.
    pub outbound: PathBuf,
    /// gridsync's inbound mailbox's arrivals folder, where answers are dropped.
    pub inbound: PathBuf,
    pub poll: Duration,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Picks up outbound files until `shutdown`.
pub async fn run(config: PartnerConfig, ledger: Arc<Ledger>, shutdown: CancellationToken) -> std::io::Result<()> {
    let picked_up = config.outbound.join(".picked-up");
    tokio::fs::create_dir_all(&picked_up).await?;
    tokio::fs::create_dir_all(&config.inbound).await?;
    let mut answers = 0u32;
    loop {
        for name in ready_files(&config.outbound).await? {
            let path = config.outbound.join(&name);
            let bytes = tokio::fs::read(&path).await?;
            let checksum = path.with_file_name(format!("{name}.sha256"));
            let recorded = tokio::fs::read_to_string(&checksum).await.ok();
            let parsed = parse(&bytes);
            for (transaction, interchange) in deliver(&name, &bytes, parsed.as_deref().ok(), recorded.as_deref()) {
                let answered = match interchange {
                    Some(ix) if ix.expects_acknowledgement() => {
                        answer(&config.inbound, ix, transaction, &mut answers).await?
                    }
                    _ => transaction,
                };
                ledger.upsert(answered);
            }
            tokio::fs::rename(&path, picked_up.join(&name)).await?;
            if recorded.is_some() {
                tokio::fs::rename(&checksum, picked_up.join(format!("{name}.sha256"))).await?;
            }
            tracing::info!(file = %name, "partner picked up an outbound file");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(config.poll) => {}
        }
    }
}

/// Complete files (not hidden, not temporary, not checksums), oldest name first.
async fn ready_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let hidden_or_partial = name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".sha256");
        if !hidden_or_partial && entry.file_type().await?.is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Lens's view of a picked-up file: one transaction per interchange (with
/// it), or one binary transaction when the file is not EDI. A checksum that
/// does not match is a validation error.
fn deliver<'i>(
    name: &str,
    bytes: &[u8],
    interchanges: Option<&'i [Interchange<'i>]>,
    recorded_checksum: Option<&str>,
) -> Vec<(LensTransaction, Option<&'i Interchange<'i>>)> {
    let base = LensTransaction {
        transactionid: String::new(),
        correlationid: None,
        editype: None,
        envelopetype: Some("BIN".into()),
        senderaddress: None,
        receiveraddress: None,
        senderreference: None,
        status: "S".into(),
        statusdate: Some(now()),
        deliverystatus: Some("Delivered".into()),
        deliveryreceipt: None,
        fastatus: Some("N".into()),
        fastatusdate: None,
        errorcode: None,
        externalerrormessage: None,
        arrivaltime: Some(now()),
        contentkeys: Vec::new(),
    };
    let id = |n: usize| format!("TG-{}-{n}", name.replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
    if let Some(recorded) = recorded_checksum {
        let actual = sha256_hex(bytes);
        if !recorded.starts_with(&actual) {
            let rejected = LensTransaction {
                transactionid: id(0),
                status: "V".into(),
                deliverystatus: Some("Validation error".into()),
                errorcode: Some("CHECKSUM".into()),
                externalerrormessage: Some(format!("{name}: sha256 {actual} does not match its .sha256 file")),
                ..base
            };
            return vec![(rejected, None)];
        }
    }
    match interchanges {
        Some(interchanges) => interchanges
            .iter()
            .enumerate()
            .map(|(n, ix)| {
                let transaction = LensTransaction {
                    transactionid: id(n),
                    editype: ix.transactions().next().map(|t| t.document_type.clone()),
                    envelopetype: Some(if ix.standard == Standard::X12 { "ISA" } else { "UNA" }.into()),
                    senderaddress: Some(ix.sender_id.trim().to_owned()),
                    receiveraddress: Some(ix.receiver_id.trim().to_owned()),
                    senderreference: Some(ix.control_number.trim().to_owned()),
                    fastatus: Some(if ix.expects_acknowledgement() { "W" } else { "N" }.into()),
                    ..base.clone()
                };
                (transaction, Some(ix))
            })
            .collect(),
        None => {
            // Not EDI (a content package): Lens knows it by its file name, sent by gridsync (its
            // default address) to the partner the name starts with.
            let binary = LensTransaction {
                transactionid: id(0),
                editype: Path::new(name).extension().map(|e| e.to_string_lossy().to_uppercase()),
                senderaddress: Some("GRIDSYNC".into()),
                receiveraddress: name.split('_').next().map(str::to_owned),
                senderreference: Some(name.to_owned()),
                deliveryreceipt: Some("Delivered".into()),
                ..base
            };
            vec![(binary, None)]
        }
    }
}

/// Answers `ix` as the partner would: its accepting 997/CONTRL goes to the
/// inbound mailbox (written under a temporary name, then renamed), and Lens
/// shows the functional ack accepted.
async fn answer(
    inbound: &Path,
    ix: &Interchange<'_>,
    transaction: LensTransaction,
    answers: &mut u32,
) -> std::io::Result<LensTransaction> {
    *answers += 1;
    let ack = functional_ack(ix, AckVerdict::Accepted, Default::default(), *answers, Utc::now().naive_utc())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let name = format!("{}-ack-{}.edi", ix.receiver_id.trim(), ix.control_number.trim());
    let temp = inbound.join(format!("{name}.part"));
    tokio::fs::write(&temp, ack).await?;
    tokio::fs::rename(&temp, inbound.join(&name)).await?;
    Ok(LensTransaction {
        fastatus: Some("A".into()),
        fastatusdate: Some(now()),
        statusdate: Some(now()),
        ..transaction
    })
}
