//! The SFTP mailbox against a real OpenSSH server on a loopback port: claim,
//! size limit, unsafe names, processed and quarantined files, recovery after a
//! crash, atomic outbound writes, and the refusals that keep it safe (unknown
//! or changed host key, wrong credentials).

use std::{path::Path, time::Duration};

use gridsync_http::Secret;
use gridsync_tests::ssh::SshServer;
use gridsync_trading_grid::mailbox::{ClaimOwner, Content, MailboxError, Outcome, SftpAuth, SftpConfig, SftpMailbox};

fn config(server: &SshServer, known_hosts: &Path) -> SftpConfig {
    config_as(server, known_hosts, "sftp-a")
}

fn config_as(server: &SshServer, known_hosts: &Path, owner: &str) -> SftpConfig {
    SftpConfig {
        host: "127.0.0.1".into(),
        port: server.port,
        user: server.user(),
        auth: SftpAuth::Key { path: server.client_key(), passphrase: None },
        known_hosts: known_hosts.to_owned(),
        root: server.root().display().to_string(),
        max_bytes: 1024,
        settle: Duration::ZERO,
        timeout: Duration::from_secs(10),
        owner: ClaimOwner::new(owner, Duration::from_millis(600)).unwrap(),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_moves_and_writes_files_on_a_real_sftp_server() {
    let server = SshServer::start().unwrap();
    let known_hosts = server.known_hosts().unwrap();
    let mailbox =
        SftpMailbox::open(config(&server, &known_hosts)).await.unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    mailbox.start_claims().await.unwrap();
    let root = server.root();
    assert_eq!(names(&root), ["inbound", "outbound", "processed", "quarantine"]);

    let inbound = root.join("inbound");
    std::fs::write(inbound.join("a.edi"), "ISA first").unwrap();
    std::fs::write(inbound.join("b.edi"), "ISA second").unwrap();
    std::fs::write(inbound.join("big.edi"), "x".repeat(2000)).unwrap();
    std::fs::write(inbound.join("c.edi.part"), "still uploading").unwrap();
    std::fs::write(inbound.join(".hidden"), "no").unwrap();
    let mut waiting = mailbox.waiting().await.unwrap();
    waiting.sort();
    assert_eq!(waiting, ["a.edi", "b.edi", "big.edi"]);

    let a = mailbox.claim("a.edi").await.unwrap().unwrap().unwrap();
    assert_eq!(a.bytes, b"ISA first");
    assert!(inbound.join(".processing/sftp-a/a.edi").is_file(), "claimed by a rename on the server, as sftp-a");
    assert!(mailbox.claim("gone.edi").await.unwrap().is_none());
    assert!(mailbox.claim("../../etc/passwd").await.unwrap().is_none());
    let too_large = mailbox.claim("big.edi").await.unwrap().unwrap().unwrap_err();
    assert_eq!(too_large.reason, "big.edi is 2000 bytes; the limit is 1024");
    // A link swapped in after the listing is refused, never read.
    std::fs::write(root.join("secret.txt"), "do not read").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), inbound.join("swapped.edi")).unwrap();
    let link = mailbox.claim("swapped.edi").await.unwrap().unwrap().unwrap_err();
    assert_eq!(link.reason, "swapped.edi is a link; links are never followed");
    std::fs::remove_file(inbound.join(".processing/sftp-a/swapped.edi")).unwrap();
    std::fs::remove_file(root.join("secret.txt")).unwrap();

    // Another instance does not take sftp-a's claims while sftp-a may be alive; once its
    // lease has read the same for a whole lease (it crashed), it does.
    let other = SftpMailbox::open(config_as(&server, &known_hosts, "sftp-b")).await.unwrap();
    other.start_claims().await.unwrap();
    assert!(other.unfinished().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut taken = other.unfinished().await.unwrap();
    taken.sort();
    assert_eq!(taken, ["a.edi", "big.edi"]);
    assert!(inbound.join(".processing/sftp-b/a.edi").is_file());
    drop(other);

    // A restart of sftp-a (after the crash) finds the files sftp-b left claimed (stopped
    // without giving its lease up, so once that lease expired).
    let reopened = SftpMailbox::open(config(&server, &known_hosts)).await.unwrap();
    reopened.start_claims().await.unwrap();
    assert!(reopened.unfinished().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(reopened.unfinished().await.unwrap().len(), 2);
    assert_eq!(reopened.finish("a.edi", &Outcome::Processed).await.unwrap(), Path::new("processed/a.edi"));
    std::fs::write(inbound.join("a.edi"), "ISA again").unwrap();
    reopened.claim("a.edi").await.unwrap().unwrap().unwrap();
    assert_eq!(reopened.finish("a.edi", &Outcome::Processed).await.unwrap(), Path::new("processed/a.edi.1"));
    let quarantined = Outcome::Quarantined { reason: "big.edi is 2000 bytes".into() };
    assert_eq!(reopened.finish("big.edi", &quarantined).await.unwrap(), Path::new("quarantine/big.edi"));
    assert_eq!(std::fs::read_to_string(root.join("quarantine/big.edi.reason")).unwrap(), "big.edi is 2000 bytes\n");
    assert_eq!(std::fs::read_to_string(root.join("processed/a.edi")).unwrap(), "ISA first");
    assert_eq!(names(&inbound.join(".processing/sftp-a")), [".lease"], "nothing left claimed");

    let written = mailbox.write_outbound("ACME_997_905-1.edi", Content::Bytes(b"ISA*ack~")).await.unwrap();
    assert!(written.created);
    assert_eq!(std::fs::read(root.join("outbound/ACME_997_905-1.edi")).unwrap(), b"ISA*ack~");
    let sidecar = std::fs::read_to_string(root.join("outbound/ACME_997_905-1.edi.sha256")).unwrap();
    assert_eq!(sidecar, format!("{}  ACME_997_905-1.edi\n", written.sha256));
    assert!(
        !mailbox.write_outbound("ACME_997_905-1.edi", Content::Bytes(b"ISA*ack~")).await.unwrap().created,
        "idempotent"
    );
    let conflict = mailbox.write_outbound("ACME_997_905-1.edi", Content::Bytes(b"different")).await.unwrap_err();
    assert!(matches!(conflict, MailboxError::Conflict { .. }), "{conflict}");
    assert!(matches!(
        mailbox.write_outbound("../escape.edi", Content::Bytes(b"x")).await,
        Err(MailboxError::UnsafeName(_))
    ));
    // A package larger than any one SFTP write, streamed from a local file.
    let package: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let local = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(local.path(), &package).unwrap();
    let streamed = mailbox.write_outbound("ACME_PKG_c-1-v1.zip", Content::File(local.path())).await.unwrap();
    assert!(streamed.created);
    assert_eq!(std::fs::read(root.join("outbound/ACME_PKG_c-1-v1.zip")).unwrap(), package);
    let again = mailbox.write_outbound("ACME_PKG_c-1-v1.zip", Content::File(local.path())).await.unwrap();
    assert!(!again.created, "compared by a streamed checksum");
    assert_eq!(
        names(&root.join("outbound")),
        ["ACME_997_905-1.edi", "ACME_997_905-1.edi.sha256", "ACME_PKG_c-1-v1.zip", "ACME_PKG_c-1-v1.zip.sha256"],
        "no temp files"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_unknown_host_keys_and_wrong_credentials() {
    let server = SshServer::start().unwrap();
    let empty = tempfile::NamedTempFile::new().unwrap();
    let err = SftpMailbox::open(config(&server, empty.path())).await.err().unwrap();
    let MailboxError::HostKey { reason, .. } = &err else { panic!("{err}") };
    assert!(reason.contains("is not in"), "{reason}");

    // A known_hosts entry for this address with another key: a changed key is refused too.
    let other = tempfile::tempdir().unwrap();
    let impostor = other.path().join("impostor");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&impostor)
        .status()
        .unwrap();
    let public = std::fs::read_to_string(impostor.with_extension("pub")).unwrap();
    let changed = other.path().join("known_hosts");
    std::fs::write(&changed, format!("[127.0.0.1]:{} {public}", server.port)).unwrap();
    let err = SftpMailbox::open(config(&server, &changed)).await.err().unwrap();
    assert!(matches!(err, MailboxError::HostKey { .. }), "{err}");

    let known_hosts = server.known_hosts().unwrap();
    let mut wrong_password = config(&server, &known_hosts);
    wrong_password.auth = SftpAuth::Password(Secret::new("not-the-password"));
    let err = SftpMailbox::open(wrong_password).await.err().unwrap();
    assert!(matches!(err, MailboxError::Auth { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("not-the-password"), "the password never shows");
    let mut wrong_key = config(&server, &known_hosts);
    wrong_key.auth = SftpAuth::Key { path: impostor, passphrase: None };
    assert!(matches!(SftpMailbox::open(wrong_key).await, Err(MailboxError::Auth { .. })));
}
