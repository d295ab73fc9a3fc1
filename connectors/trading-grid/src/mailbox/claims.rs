//! Who holds a claimed file, so several tg-producers can share one mailbox.
//!
//! Each instance claims into its own folder, `inbound/.processing/<owner>/`, and keeps a
//! lease there (`.lease`, rewritten every quarter of the lease time). Recovery after a
//! crash takes the instance's own claims, and those of an owner whose lease has not
//! changed for a whole lease time, moving them into its folder with a rename, which only
//! one instance can win. Whether a lease changed is judged on this process's clock from
//! when it was first seen so: the clocks of other hosts (or of the SFTP server) are never
//! compared with ours.
//!
//! A claim taken over from an instance that was only paused, not dead, may be published by
//! both: under the same event ids, which the consumers and the published-events store
//! recognise.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use super::MailboxError;

/// The lease file in an owner's folder (hidden, so never listed as a claim).
pub(crate) const LEASE_FILE: &str = ".lease";

/// The instance claiming files, and how long its claims outlive its last sign of life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOwner {
    /// A name of its own among the instances sharing the mailbox (the host name by default).
    pub id: String,
    pub lease: Duration,
}

impl ClaimOwner {
    /// `id` must be usable as a folder name: letters, digits, `-`, `_` and `.` (not first).
    pub fn new(id: &str, lease: Duration) -> Result<Self, MailboxError> {
        let safe = !id.is_empty()
            && !id.starts_with('.')
            && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !safe {
            return Err(MailboxError::UnsafeName(id.to_owned()));
        }
        Ok(ClaimOwner { id: id.to_owned(), lease })
    }

    /// The owner a binary that only writes `outbound/` is configured with: it never claims.
    pub fn writing_only() -> Self {
        ClaimOwner { id: Self::host_name(), lease: Duration::from_secs(30) }
    }

    /// This host's name, when the instance is not given one.
    pub fn host_name() -> String {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|name| name.trim().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect())
            .filter(|name: &String| !name.is_empty() && !name.starts_with('-'))
            .unwrap_or_else(|| "tg-producer".to_owned())
    }
}

/// What a claim store (the local folder or the SFTP server) offers the claim logic.
pub(crate) trait ClaimDirs {
    /// The owners' folders under `.processing/`.
    async fn owners(&self) -> Result<Vec<String>, MailboxError>;
    /// Files claimed by `owner`, or (for `None`) left directly in `.processing/` by a version
    /// that did not name owners.
    async fn claimed_by(&self, owner: Option<&str>) -> Result<Vec<String>, MailboxError>;
    async fn create_owner(&self, owner: &str) -> Result<(), MailboxError>;
    /// The owner's lease, `None` when it has none.
    async fn read_lease(&self, owner: &str) -> Result<Option<String>, MailboxError>;
    async fn write_lease(&self, owner: &str, lease: &str) -> Result<(), MailboxError>;
    async fn remove_lease(&self, owner: &str) -> Result<(), MailboxError>;
    /// Moves a claim into `to`'s folder; `false` when it is gone (another instance took it).
    async fn take(&self, from: Option<&str>, name: &str, to: &str) -> Result<bool, MailboxError>;
}

/// This instance's lease, and what it has seen of the others'.
#[derive(Debug)]
pub(crate) struct Claims {
    pub(crate) owner: ClaimOwner,
    /// Tells this run's lease from a predecessor's, or a twin's under the same id.
    nonce: u64,
    beats: AtomicU64,
    /// Per other owner: its lease as last read, and since when it has read so.
    seen: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl Claims {
    pub(crate) fn new(owner: ClaimOwner) -> Self {
        Claims { owner, nonce: rand::random(), beats: AtomicU64::new(0), seen: Mutex::default() }
    }

    /// Takes this owner's folder. A lease already there is a predecessor's (crashed) or a
    /// running twin's under the same id: watched for half a lease, a twin has rewritten it.
    pub(crate) async fn start(&self, dirs: &impl ClaimDirs) -> Result<(), MailboxError> {
        let id = &self.owner.id;
        dirs.create_owner(id).await?;
        if let Some(before) = dirs.read_lease(id).await? {
            tracing::info!(owner = %id, "a lease of this owner is there; checking that no other instance holds it");
            tokio::time::sleep(self.owner.lease / 2).await;
            if dirs.read_lease(id).await?.is_some_and(|now| now != before) {
                return Err(MailboxError::OwnerInUse { owner: id.clone() });
            }
        }
        self.beat(dirs).await
    }

    /// Rewrites the lease: this instance is alive.
    pub(crate) async fn beat(&self, dirs: &impl ClaimDirs) -> Result<(), MailboxError> {
        let beat = self.beats.fetch_add(1, Ordering::Relaxed);
        dirs.write_lease(&self.owner.id, &format!("{:016x} {beat}\n", self.nonce)).await
    }

    /// Gives the lease up (on shutdown): other instances take what is still claimed at once.
    pub(crate) async fn release(&self, dirs: &impl ClaimDirs) -> Result<(), MailboxError> {
        dirs.remove_lease(&self.owner.id).await
    }

    /// Renews the lease every quarter of its time until `done`, then gives it up.
    pub(crate) async fn keep(&self, dirs: &impl ClaimDirs, done: &tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tokio::time::sleep(self.owner.lease / 4) => {}
            }
            if let Err(e) = self.beat(dirs).await {
                tracing::warn!(error = %e, "could not renew the lease on claimed files");
            }
        }
        if let Err(e) = self.release(dirs).await {
            tracing::warn!(error = %e, "could not give up the lease on claimed files; it expires by itself");
        }
    }

    /// This instance's claims, after taking over those of expired owners.
    pub(crate) async fn unfinished(&self, dirs: &impl ClaimDirs) -> Result<Vec<String>, MailboxError> {
        let me = self.owner.id.as_str();
        for name in dirs.claimed_by(None).await? {
            if dirs.take(None, &name, me).await? {
                tracing::info!(file = %name, "took over a claim left by an earlier version");
            }
        }
        for other in dirs.owners().await?.into_iter().filter(|o| o != me) {
            let lease = dirs.read_lease(&other).await?;
            if !self.expired(&other, lease) {
                continue;
            }
            for name in dirs.claimed_by(Some(&other)).await? {
                if dirs.take(Some(&other), &name, me).await? {
                    tracing::warn!(file = %name, owner = %other, "took over the claim of an instance whose lease expired");
                }
            }
        }
        dirs.claimed_by(Some(me)).await
    }

    /// An owner without a lease (stopped cleanly) has expired; one whose lease has read the
    /// same for a whole lease time on our clock too.
    fn expired(&self, owner: &str, lease: Option<String>) -> bool {
        let Some(lease) = lease else { return true };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match seen.get(owner) {
            Some((Some(last), since)) if *last == lease => now.duration_since(*since) >= self.owner.lease,
            _ => {
                seen.insert(owner.to_owned(), (Some(lease), now));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_are_folder_names() {
        assert!(ClaimOwner::new("tg-producer-0.eu_1", Duration::ZERO).is_ok());
        for bad in ["", ".hidden", "a/b", "..", "a b"] {
            assert!(ClaimOwner::new(bad, Duration::ZERO).is_err(), "{bad:?}");
        }
        assert!(ClaimOwner::new(&ClaimOwner::host_name(), Duration::ZERO).is_ok());
    }

    #[test]
    fn a_lease_expires_only_after_reading_the_same_for_a_whole_lease() {
        let claims = Claims::new(ClaimOwner::new("me", Duration::from_millis(200)).unwrap());
        assert!(claims.expired("gone", None), "no lease: stopped cleanly");
        assert!(!claims.expired("b", Some("1 0".into())), "first seen");
        std::thread::sleep(Duration::from_millis(120));
        assert!(!claims.expired("b", Some("1 1".into())), "rewritten: alive");
        std::thread::sleep(Duration::from_millis(120));
        assert!(!claims.expired("b", Some("1 1".into())), "unchanged for less than a lease");
        std::thread::sleep(Duration::from_millis(100));
        assert!(claims.expired("b", Some("1 1".into())), "unchanged for a lease");
    }
}
