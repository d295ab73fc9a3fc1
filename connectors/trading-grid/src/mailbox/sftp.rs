//! A mailbox on an SFTP server: how Trading Grid hands over and takes in
//! documents in most real deployments.
//!
//! The same layout and guarantees as the local mailbox, on the server:
//! `inbound/` (arrivals), `inbound/.processing/` (claimed by a rename, which
//! the server performs atomically and refuses when the target exists),
//! `processed/`, `quarantine/` (with a `.reason` beside each file) and
//! `outbound/` (written under a hidden temporary name, then renamed, with a
//! `.sha256` beside it).
//!
//! The server's host key must be in the configured `known_hosts` file: an
//! unknown or changed key refuses the connection. A dropped connection is
//! re-established on the next operation.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use gridsync_http::Secret;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::{
    client::{error::Error as SftpError, SftpSession},
    protocol::StatusCode,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::Mutex as AsyncMutex,
};

use super::{
    acceptable,
    claims::{ClaimDirs, ClaimOwner, Claims, LEASE_FILE},
    content::{sha256_of, Content},
    settle::{Listed, Settle},
    Claimed, MailboxError, Outcome, Refused, Written,
};

/// How to log in (secrets are never printed).
#[derive(Debug, Clone)]
pub enum SftpAuth {
    Password(Secret),
    /// An OpenSSH private key file, with its passphrase if it has one.
    Key {
        path: PathBuf,
        passphrase: Option<Secret>,
    },
}

/// Where the mailbox is and how to reach it.
#[derive(Debug, Clone)]
pub struct SftpConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: SftpAuth,
    /// OpenSSH `known_hosts` file holding the server's host key.
    pub known_hosts: PathBuf,
    /// The mailbox root on the server (relative to the login directory, or absolute).
    pub root: String,
    /// Largest inbound file accepted, in bytes.
    pub max_bytes: u64,
    /// How long an inbound file's size and modification time must not change before it is claimed.
    pub settle: std::time::Duration,
    /// Connection and per-request timeout.
    pub timeout: Duration,
    /// Whose claims this instance's are (see `claims`).
    pub owner: ClaimOwner,
}

/// Accepts the server only if its key is in `known_hosts`; remembers why not.
struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: PathBuf,
    refusal: Arc<Mutex<Option<String>>>,
}

impl russh::client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, offered: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let refusal = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                match russh::keys::check_known_hosts_path(&self.host, self.port, key, &self.known_hosts) {
                    Ok(true) => return Ok(true),
                    Ok(false) => format!(
                        "host key {} is not in {}",
                        key.fingerprint(Default::default()),
                        self.known_hosts.display()
                    ),
                    Err(e) => format!("host key check against {}: {e}", self.known_hosts.display()),
                }
            }
            PublicKeyOrCertificate::Certificate(_) => "host certificates are not supported".to_owned(),
        };
        if let Ok(mut slot) = self.refusal.lock() {
            *slot = Some(refusal);
        }
        Ok(false)
    }
}

pub struct SftpMailbox {
    config: SftpConfig,
    session: AsyncMutex<Option<Arc<SftpSession>>>,
    settle: Settle,
    pub(crate) claims: Claims,
}

fn sftp_error(operation: &'static str, path: &str) -> impl FnOnce(SftpError) -> MailboxError {
    let path = path.to_owned();
    move |source| MailboxError::Sftp { operation, path, source }
}

fn not_found(e: &SftpError) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile)
}

impl SftpMailbox {
    /// Connects and creates the mailbox folders that are missing.
    pub async fn open(config: SftpConfig) -> Result<Self, MailboxError> {
        let settle = Settle::new(config.settle);
        let claims = Claims::new(config.owner.clone());
        let mailbox = SftpMailbox { config, session: AsyncMutex::new(None), settle, claims };
        let sftp = mailbox.sftp().await?;
        for dir in ["inbound", "inbound/.processing", "processed", "quarantine", "outbound"] {
            let path = mailbox.path(dir);
            if !sftp.try_exists(path.clone()).await.map_err(sftp_error("checking", &path))? {
                sftp.create_dir(path.clone()).await.map_err(sftp_error("creating", &path))?;
            }
        }
        Ok(mailbox)
    }

    fn path(&self, relative: &str) -> String {
        format!("{}/{relative}", self.config.root.trim_end_matches('/'))
    }

    fn ssh_error(&self, message: String) -> MailboxError {
        MailboxError::Ssh { host: format!("{}:{}", self.config.host, self.config.port), message }
    }

    /// The live session, connecting (again) if there is none.
    async fn sftp(&self) -> Result<Arc<SftpSession>, MailboxError> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            return Ok(session.clone());
        }
        let session = Arc::new(self.connect().await?);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Runs `op` on the session; a failure that is not the server's answer
    /// (a dropped connection, a timeout) forgets the session so the next
    /// operation reconnects.
    async fn with_sftp<T, F, Fut>(&self, op: F) -> Result<T, MailboxError>
    where
        F: FnOnce(Arc<SftpSession>) -> Fut,
        Fut: std::future::Future<Output = Result<T, MailboxError>>,
    {
        let result = op(self.sftp().await?).await;
        if let Err(MailboxError::Sftp { source: SftpError::IO(_) | SftpError::Timeout, .. }) = &result {
            *self.session.lock().await = None;
        }
        result
    }

    async fn connect(&self) -> Result<SftpSession, MailboxError> {
        let c = &self.config;
        let refusal = Arc::new(Mutex::new(None));
        let check = HostKeyCheck {
            host: c.host.clone(),
            port: c.port,
            known_hosts: c.known_hosts.clone(),
            refusal: refusal.clone(),
        };
        let ssh_config =
            Arc::new(russh::client::Config { inactivity_timeout: Some(c.timeout * 10), ..Default::default() });
        let connecting = russh::client::connect(ssh_config, (c.host.as_str(), c.port), check);
        let mut handle = match tokio::time::timeout(c.timeout, connecting).await {
            Err(_) => return Err(self.ssh_error(format!("no answer within {:?}", c.timeout))),
            Ok(Ok(handle)) => handle,
            Ok(Err(e)) => {
                let why = refusal.lock().ok().and_then(|r| r.clone());
                return Err(match why {
                    Some(reason) => MailboxError::HostKey { host: c.host.clone(), reason },
                    None => self.ssh_error(e.to_string()),
                });
            }
        };
        let authenticated = match &c.auth {
            SftpAuth::Password(password) => handle.authenticate_password(&c.user, password.expose()).await,
            SftpAuth::Key { path, passphrase } => {
                let key = russh::keys::load_secret_key(path, passphrase.as_ref().map(Secret::expose))
                    .map_err(|e| self.ssh_error(format!("reading the private key {}: {e}", path.display())))?;
                let hash = handle.best_supported_rsa_hash().await.map_err(|e| self.ssh_error(e.to_string()))?;
                handle.authenticate_publickey(&c.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash.flatten())).await
            }
        }
        .map_err(|e| self.ssh_error(e.to_string()))?;
        if !authenticated.success() {
            return Err(MailboxError::Auth { user: c.user.clone(), host: c.host.clone() });
        }
        let channel = handle.channel_open_session().await.map_err(|e| self.ssh_error(e.to_string()))?;
        channel.request_subsystem(true, "sftp").await.map_err(|e| self.ssh_error(e.to_string()))?;
        let sftp = SftpSession::new(channel.into_stream()).await.map_err(sftp_error("starting SFTP on", &c.host))?;
        sftp.set_timeout(c.timeout.as_secs().max(1));
        tracing::info!(host = %c.host, port = c.port, user = %c.user, root = %c.root, "SFTP mailbox connected");
        Ok(sftp)
    }

    /// Regular files in `dir` with acceptable names, oldest first.
    async fn files(&self, dir: &str) -> Result<Vec<Listed>, MailboxError> {
        let path = self.path(dir);
        self.with_sftp(|sftp| async move {
            let entries = sftp.read_dir(path.clone()).await.map_err(sftp_error("listing", &path))?;
            let mut files: Vec<(SystemTime, String, u64)> = entries
                .filter(|e| e.file_type().is_file() && acceptable(&e.file_name()))
                .map(|e| {
                    let meta = e.metadata();
                    (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), e.file_name(), meta.len())
                })
                .collect();
            files.sort();
            Ok(files.into_iter().map(|(modified, name, size)| (name, size, modified)).collect())
        })
        .await
    }

    /// Makes this instance an owner of claims (see `claims`): before reading `inbound/`. An
    /// instance that only writes `outbound/` never does.
    pub async fn start_claims(&self) -> Result<(), MailboxError> {
        self.claims.start(self).await
    }

    /// Files claimed before a crash, by this instance or one whose lease expired: to be
    /// processed again first.
    pub async fn unfinished(&self) -> Result<Vec<String>, MailboxError> {
        self.claims.unfinished(self).await
    }

    /// Where this instance's claim of `name` is.
    fn claimed(&self, name: &str) -> String {
        self.path(&format!("inbound/.processing/{}/{name}", self.claims.owner.id))
    }

    /// An owner's folder (`None`: `.processing/` itself), relative to the root.
    fn owner_dir(owner: Option<&str>) -> String {
        owner.map_or_else(|| "inbound/.processing".to_owned(), |owner| format!("inbound/.processing/{owner}"))
    }

    /// Files waiting in `inbound/` that have settled.
    pub async fn waiting(&self) -> Result<Vec<String>, MailboxError> {
        Ok(self.settle.settled(self.files("inbound").await?))
    }

    /// Claims a waiting file (or re-reads one already claimed), as `LocalMailbox::claim`: a
    /// link is refused unread, and at most the size limit is read.
    pub async fn claim(&self, name: &str) -> Result<Option<Result<Claimed, Refused>>, MailboxError> {
        if !acceptable(name) {
            return Ok(None);
        }
        let claimed = self.claimed(name);
        let waiting = self.path(&format!("inbound/{name}"));
        let max_bytes = self.config.max_bytes;
        self.with_sftp(|sftp| async move {
            let meta = match sftp.symlink_metadata(claimed.clone()).await {
                Ok(meta) => meta,
                Err(e) if not_found(&e) => {
                    match sftp.rename(waiting.clone(), claimed.clone()).await {
                        Ok(()) => {}
                        // Gone, or claimed by another process first.
                        Err(e) if not_found(&e) => return Ok(None),
                        Err(e) => return Err(sftp_error("claiming", &waiting)(e)),
                    }
                    sftp.symlink_metadata(claimed.clone()).await.map_err(sftp_error("reading", &claimed))?
                }
                Err(e) => return Err(sftp_error("reading", &claimed)(e)),
            };
            let arrived = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let refused = |reason| Ok(Some(Err(Refused::new(name, reason, meta.len(), arrived))));
            if meta.file_type().is_symlink() {
                return refused(format!("{name} is a link; links are never followed"));
            }
            if !meta.file_type().is_file() {
                return refused(format!("{name} is not a regular file"));
            }
            if meta.len() > max_bytes {
                return refused(format!("{name} is {} bytes; the limit is {max_bytes}", meta.len()));
            }
            let file = sftp.open(claimed.clone()).await.map_err(sftp_error("opening", &claimed))?;
            let mut bytes = Vec::new();
            let read = file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).await;
            read.map_err(|e| sftp_error("reading", &claimed)(SftpError::IO(e.to_string())))?;
            if bytes.len() as u64 > max_bytes {
                return refused(format!("{name} is over {max_bytes} bytes; the limit is {max_bytes}"));
            }
            Ok(Some(Ok(Claimed { name: name.to_owned(), bytes, arrived })))
        })
        .await
    }

    /// Where `finish` will put a file, relative to the mailbox root: an earlier
    /// file of the same name is never overwritten.
    pub async fn destination(&self, name: &str, outcome: &Outcome) -> Result<PathBuf, MailboxError> {
        let folder = match outcome {
            Outcome::Processed => "processed",
            Outcome::Quarantined { .. } => "quarantine",
        };
        for file in super::settled_names(name) {
            let mut names = vec![file.clone()];
            if matches!(outcome, Outcome::Quarantined { .. }) {
                // Its reason goes beside it: that name must be free too.
                names.push(super::reason_name(&file));
            }
            let mut taken = false;
            for candidate in names {
                let path = self.path(&format!("{folder}/{candidate}"));
                taken |= self
                    .with_sftp(|sftp| async move {
                        sftp.try_exists(path.clone()).await.map_err(sftp_error("checking", &path))
                    })
                    .await?;
            }
            if !taken {
                return Ok(Path::new(folder).join(file));
            }
        }
        unreachable!("settled_names never ends")
    }

    /// Keeps a part of a claimed file in `quarantine/` with its reason, as the local mailbox
    /// does: a file of its name holding the same bytes is it; one holding others is never
    /// written over (the next name is tried).
    pub async fn quarantine_part(
        &self,
        name: &str,
        part: &str,
        bytes: &[u8],
        reason: &str,
    ) -> Result<PathBuf, MailboxError> {
        let part_name = super::part_name(name, part);
        for file in super::settled_names(&part_name) {
            let path = self.path(&format!("quarantine/{file}"));
            let reason_path = self.path(&format!("quarantine/{}", super::reason_name(&file)));
            let kept = self
                .with_sftp(|sftp| {
                    let (path, reason_path) = (path.clone(), reason_path.clone());
                    async move {
                        match sftp.read(path.clone()).await {
                            Ok(existing) => return Ok(Some(existing == bytes)),
                            Err(e) if not_found(&e) => {}
                            Err(e) => return Err(sftp_error("reading", &path)(e)),
                        }
                        if sftp.try_exists(reason_path.clone()).await.map_err(sftp_error("checking", &reason_path))? {
                            return Ok(Some(false));
                        }
                        write_file(&sftp, &reason_path, Content::Bytes(format!("{reason}\n").as_bytes())).await?;
                        write_file(&sftp, &path, Content::Bytes(bytes)).await?;
                        Ok(None)
                    }
                })
                .await?;
            // Written now (`None`), or there already with the same bytes.
            if kept != Some(false) {
                return Ok(Path::new("quarantine").join(file));
            }
        }
        unreachable!("settled_names never ends")
    }

    /// Moves a claimed file on; a quarantined file gets a `.reason` beside it.
    pub async fn finish(&self, name: &str, outcome: &Outcome) -> Result<PathBuf, MailboxError> {
        let relative = self.destination(name, outcome).await?;
        let to = self.path(&relative.display().to_string());
        let from = self.claimed(name);
        self.with_sftp(|sftp| async move {
            if let Outcome::Quarantined { reason } = outcome {
                let reason_file = super::reason_name(&to);
                write_file(&sftp, &reason_file, Content::Bytes(format!("{reason}\n").as_bytes())).await?;
            }
            sftp.rename(from.clone(), to.clone()).await.map_err(sftp_error("moving", &from))
        })
        .await?;
        Ok(relative)
    }

    /// Writes a document to `outbound/` atomically with its checksum, as
    /// `OutboundMailbox::write` does locally: the same content again is a
    /// no-op, different content under the same name is refused.
    pub async fn write_outbound(&self, name: &str, content: Content<'_>) -> Result<Written, MailboxError> {
        if !acceptable(name) {
            return Err(MailboxError::UnsafeName(name.to_owned()));
        }
        let path = self.path(&format!("outbound/{name}"));
        let temp = self.path(&format!("outbound/.{name}.tmp"));
        let checksum = self.path(&format!("outbound/{name}.sha256"));
        let sha256 = content.sha256().await?;
        self.with_sftp(|sftp| async move {
            match sftp.open(path.clone()).await {
                Ok(existing) => {
                    let existing_sha = sha256_of(existing)
                        .await
                        .map_err(|e| sftp_error("reading", &path)(SftpError::IO(e.to_string())))?;
                    if existing_sha == sha256 {
                        return Ok(Written { path: PathBuf::from(path), sha256, created: false });
                    }
                    return Err(MailboxError::Conflict { path: PathBuf::from(path), existing_sha256: existing_sha });
                }
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(sftp_error("reading", &path)(e)),
            }
            let line = format!("{sha256}  {name}\n");
            write_file(&sftp, &checksum, Content::Bytes(line.as_bytes())).await?;
            write_file(&sftp, &temp, content).await?;
            sftp.rename(temp.clone(), path.clone()).await.map_err(sftp_error("renaming", &temp))?;
            Ok(Written { path: PathBuf::from(path), sha256, created: true })
        })
        .await
    }
}

impl ClaimDirs for SftpMailbox {
    async fn owners(&self) -> Result<Vec<String>, MailboxError> {
        let path = self.path("inbound/.processing");
        self.with_sftp(|sftp| async move {
            let entries = sftp.read_dir(path.clone()).await.map_err(sftp_error("listing", &path))?;
            Ok(entries
                .filter(|e| e.file_type().is_dir())
                .map(|e| e.file_name())
                .filter(|n| n != "." && n != "..")
                .collect())
        })
        .await
    }

    async fn claimed_by(&self, owner: Option<&str>) -> Result<Vec<String>, MailboxError> {
        Ok(self.files(&Self::owner_dir(owner)).await?.into_iter().map(|(name, ..)| name).collect())
    }

    async fn create_owner(&self, owner: &str) -> Result<(), MailboxError> {
        let path = self.path(&Self::owner_dir(Some(owner)));
        self.with_sftp(|sftp| async move {
            if !sftp.try_exists(path.clone()).await.map_err(sftp_error("checking", &path))? {
                sftp.create_dir(path.clone()).await.map_err(sftp_error("creating", &path))?;
            }
            Ok(())
        })
        .await
    }

    async fn read_lease(&self, owner: &str) -> Result<Option<String>, MailboxError> {
        let path = self.path(&format!("{}/{LEASE_FILE}", Self::owner_dir(Some(owner))));
        self.with_sftp(|sftp| async move {
            match sftp.read(path.clone()).await {
                Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(sftp_error("reading", &path)(e)),
            }
        })
        .await
    }

    async fn write_lease(&self, owner: &str, lease: &str) -> Result<(), MailboxError> {
        let path = self.path(&format!("{}/{LEASE_FILE}", Self::owner_dir(Some(owner))));
        self.with_sftp(|sftp| async move { write_file(&sftp, &path, Content::Bytes(lease.as_bytes())).await }).await
    }

    async fn remove_lease(&self, owner: &str) -> Result<(), MailboxError> {
        let path = self.path(&format!("{}/{LEASE_FILE}", Self::owner_dir(Some(owner))));
        self.with_sftp(|sftp| async move {
            match sftp.remove_file(path.clone()).await {
                Err(e) if !not_found(&e) => Err(sftp_error("removing", &path)(e)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn take(&self, from: Option<&str>, name: &str, to: &str) -> Result<bool, MailboxError> {
        let source = self.path(&format!("{}/{name}", Self::owner_dir(from)));
        let target = self.path(&format!("{}/{name}", Self::owner_dir(Some(to))));
        self.with_sftp(|sftp| async move {
            match sftp.rename(source.clone(), target).await {
                Ok(()) => Ok(true),
                Err(e) if not_found(&e) => Ok(false),
                Err(e) => Err(sftp_error("taking over", &source)(e)),
            }
        })
        .await
    }
}

/// Creates (or truncates) `path` on the server with `content`, streamed.
async fn write_file(sftp: &SftpSession, path: &str, content: Content<'_>) -> Result<(), MailboxError> {
    let mut file = sftp.create(path.to_owned()).await.map_err(sftp_error("creating", path))?;
    // The file handle speaks std::io; its errors are the SFTP session's.
    let io = |operation| move |e: std::io::Error| sftp_error(operation, path)(SftpError::IO(e.to_string()));
    tokio::io::copy(&mut content.reader().await?, &mut file).await.map_err(io("writing"))?;
    file.shutdown().await.map_err(io("closing"))
}
