//! A mailbox in a local directory, where an AS2/SFTP gateway drops files.
//!
//! Layout under the root: `inbound/` (arrivals), `inbound/.processing/<owner>/`
//! (claimed, see `claims`), `processed/`, `quarantine/` (with a `.reason` file beside each
//! file). Claiming is a rename within one file system, so it is atomic; a file
//! left claimed by a crash is claimed again on the next start (or by another instance once
//! the lease expired), never lost.

use std::{
    io::Read,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use super::{
    acceptable,
    claims::{ClaimDirs, ClaimOwner, Claims, LEASE_FILE},
    io,
    settle::{Listed, Settle},
    Claimed, MailboxError, Outcome, Refused,
};

/// Reads a claimed file: opened without following a link (one swapped in after listing is
/// refused, not read) and without blocking on a FIFO; what was opened must be a regular file;
/// at most `max_bytes` are read, whatever its size said when listed (it may still grow).
fn read_claimed(path: &Path, name: &str, max_bytes: u64) -> Result<Result<Claimed, Refused>, MailboxError> {
    let opened = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let meta = std::fs::symlink_metadata(path).map_err(io("reading", path))?;
            let arrived = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let reason = format!("{name} is a link; links are never followed");
            return Ok(Err(Refused::new(name, reason, meta.len(), arrived)));
        }
        Err(e) => return Err(io("opening", path)(e)),
    };
    let meta = file.metadata().map_err(io("reading", path))?;
    let arrived = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    if !meta.is_file() {
        return Ok(Err(Refused::new(name, format!("{name} is not a regular file"), meta.len(), arrived)));
    }
    let too_large = |size| format!("{name} is {size} bytes; the limit is {max_bytes}");
    if meta.len() > max_bytes {
        return Ok(Err(Refused::new(name, too_large(meta.len().to_string()), meta.len(), arrived)));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io("reading", path))?;
    if bytes.len() as u64 > max_bytes {
        return Ok(Err(Refused::new(name, too_large(format!("over {max_bytes}")), bytes.len() as u64, arrived)));
    }
    Ok(Ok(Claimed { name: name.to_owned(), bytes, arrived }))
}

pub struct LocalMailbox {
    inbound: PathBuf,
    /// `inbound/.processing/`: a folder per owner.
    processing: PathBuf,
    /// This instance's claims.
    claimed: PathBuf,
    processed: PathBuf,
    quarantine: PathBuf,
    max_bytes: u64,
    settle: Settle,
    pub(crate) claims: Claims,
}

impl LocalMailbox {
    /// Creates the folders under `root` if they are missing. A file in `inbound/` is claimed
    /// once its size and modification time have not changed for `settle`; claimed for `owner`.
    pub async fn open(root: &Path, max_bytes: u64, settle: Duration, owner: ClaimOwner) -> Result<Self, MailboxError> {
        let processing = root.join("inbound").join(".processing");
        let mailbox = LocalMailbox {
            inbound: root.join("inbound"),
            claimed: processing.join(&owner.id),
            processing,
            processed: root.join("processed"),
            quarantine: root.join("quarantine"),
            max_bytes,
            settle: Settle::new(settle),
            claims: Claims::new(owner),
        };
        for dir in [&mailbox.processing, &mailbox.processed, &mailbox.quarantine] {
            tokio::fs::create_dir_all(dir).await.map_err(io("creating", dir))?;
        }
        mailbox.claims.start(&mailbox).await?;
        Ok(mailbox)
    }

    pub fn inbound_dir(&self) -> &Path {
        &self.inbound
    }

    /// Regular files in `dir` with acceptable names, oldest first.
    async fn files(dir: &Path) -> Result<Vec<Listed>, MailboxError> {
        let mut entries = tokio::fs::read_dir(dir).await.map_err(io("listing", dir))?;
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io("listing", dir))? {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            // symlink_metadata: a link is never followed out of the mailbox.
            let Ok(meta) = tokio::fs::symlink_metadata(entry.path()).await else { continue };
            if meta.is_file() && acceptable(&name) {
                files.push((name, meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
        files.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        Ok(files)
    }

    /// Files claimed before a crash, by this instance or one whose lease expired: to be
    /// processed again first.
    pub async fn unfinished(&self) -> Result<Vec<String>, MailboxError> {
        self.claims.unfinished(self).await
    }

    /// Files waiting in `inbound/` that have settled.
    pub async fn waiting(&self) -> Result<Vec<String>, MailboxError> {
        Ok(self.settle.settled(Self::files(&self.inbound).await?))
    }

    /// Claims a waiting file (or re-reads one already in `.processing/`).
    /// `None` when another process claimed it first. A file over the size limit, a link or
    /// anything but a regular file is claimed without being read, and refused.
    pub async fn claim(&self, name: &str) -> Result<Option<Result<Claimed, Refused>>, MailboxError> {
        if !acceptable(name) {
            return Ok(None);
        }
        let claimed = self.claimed.join(name);
        let waiting = self.inbound.join(name);
        if tokio::fs::symlink_metadata(&claimed).await.is_err() {
            match tokio::fs::rename(&waiting, &claimed).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io("claiming", &waiting)(e)),
            }
        }
        let (name, max_bytes) = (name.to_owned(), self.max_bytes);
        let path = claimed.clone();
        tokio::task::spawn_blocking(move || read_claimed(&path, &name, max_bytes))
            .await
            .map_err(|e| io("reading", &claimed)(std::io::Error::other(e)))?
            .map(Some)
    }

    /// Where `finish` will put a file, relative to the mailbox root (e.g.
    /// `quarantine/broken.edi`): nothing already there is ever overwritten, the file or the
    /// `.reason` beside a quarantined one ([`super::settled_names`]).
    pub async fn destination(&self, name: &str, outcome: &Outcome) -> PathBuf {
        let (dir, folder) = self.folder(outcome);
        for file in super::settled_names(name) {
            if !self.taken(dir, &file, outcome).await {
                return Path::new(folder).join(file);
            }
        }
        unreachable!("settled_names never ends")
    }

    /// Keeps `bytes`, a part of the claimed file `name` rejected on its own while the rest of
    /// the file is processed, in quarantine as `<name>.<part>` ([`super::part_name`]) with a
    /// `.reason` beside it; returns where, relative to the mailbox root. Processing the file
    /// again keeps the part once (a file of that name holding the same bytes is it), and nothing
    /// already there is written over: the part is linked in from a temporary file, which fails
    /// where the name is taken, and the next name is tried.
    pub async fn quarantine_part(
        &self,
        name: &str,
        part: &str,
        bytes: &[u8],
        reason: &str,
    ) -> Result<PathBuf, MailboxError> {
        let part_name = super::part_name(name, part);
        let temp = self.quarantine.join(format!(".{part_name}.tmp"));
        tokio::fs::write(&temp, bytes).await.map_err(io("writing", &temp))?;
        let kept = self.keep_part(&part_name, &temp, bytes, reason).await;
        let _ = tokio::fs::remove_file(&temp).await;
        kept
    }

    async fn keep_part(
        &self,
        part_name: &str,
        temp: &Path,
        bytes: &[u8],
        reason: &str,
    ) -> Result<PathBuf, MailboxError> {
        for file in super::settled_names(part_name) {
            let to = self.quarantine.join(&file);
            match tokio::fs::read(&to).await {
                Ok(existing) if existing == bytes => return Ok(Path::new("quarantine").join(file)),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("reading", &to)(e)),
            }
            if link_in(&self.quarantine, &file, temp, Some(reason), ("keeping", &to)).await? {
                return Ok(Path::new("quarantine").join(file));
            }
        }
        unreachable!("settled_names never ends")
    }

    fn folder(&self, outcome: &Outcome) -> (&PathBuf, &'static str) {
        match outcome {
            Outcome::Processed => (&self.processed, "processed"),
            Outcome::Quarantined { .. } => (&self.quarantine, "quarantine"),
        }
    }

    async fn taken(&self, dir: &Path, file: &str, outcome: &Outcome) -> bool {
        let exists = |name: String| async move { tokio::fs::symlink_metadata(dir.join(name)).await.is_ok() };
        exists(file.to_owned()).await
            || (matches!(outcome, Outcome::Quarantined { .. }) && exists(super::reason_name(file)).await)
    }

    /// Moves a claimed file on, to the first name [`Self::destination`] finds free; a quarantined
    /// file gets a `<file>.reason` beside it. Neither is written over anything: the reason is
    /// created new and the file linked in (a link fails where a name is taken, by a replica in
    /// between too: the next name is tried). Returns where the file now is.
    pub async fn finish(&self, name: &str, outcome: &Outcome) -> Result<PathBuf, MailboxError> {
        let from = self.claimed.join(name);
        let (dir, _) = self.folder(outcome);
        for file in super::settled_names(name) {
            if self.taken(dir, &file, outcome).await {
                continue;
            }
            let to = dir.join(&file);
            let reason = match outcome {
                Outcome::Quarantined { reason } => Some(reason.as_str()),
                Outcome::Processed => None,
            };
            if link_in(dir, &file, &from, reason, ("moving", &from)).await? {
                tokio::fs::remove_file(&from).await.map_err(io("moving", &from))?;
                return Ok(to);
            }
        }
        unreachable!("settled_names never ends")
    }
}

/// Links `from` in as `dir/file`, its `reason` (if any) created new beside it first; false,
/// with nothing left behind, when either name is taken (by anything, a replica's move in between
/// too): the caller tries the next name. Nothing already there is ever written over. A failure
/// to link is reported as `failing` says (an operation and its path).
async fn link_in(
    dir: &Path,
    file: &str,
    from: &Path,
    reason: Option<&str>,
    failing: (&'static str, &Path),
) -> Result<bool, MailboxError> {
    let reason_file = dir.join(super::reason_name(file));
    if let Some(reason) = reason {
        match tokio::fs::OpenOptions::new().write(true).create_new(true).open(&reason_file).await {
            Ok(mut out) => tokio::io::AsyncWriteExt::write_all(&mut out, format!("{reason}\n").as_bytes())
                .await
                .map_err(io("writing", &reason_file))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io("writing", &reason_file)(e)),
        }
    }
    match tokio::fs::hard_link(from, dir.join(file)).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if reason.is_some() {
                let _ = tokio::fs::remove_file(&reason_file).await;
            }
            Ok(false)
        }
        Err(e) => Err(io(failing.0, failing.1)(e)),
    }
}

impl ClaimDirs for LocalMailbox {
    async fn owners(&self) -> Result<Vec<String>, MailboxError> {
        let mut entries = tokio::fs::read_dir(&self.processing).await.map_err(io("listing", &self.processing))?;
        let mut owners = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io("listing", &self.processing))? {
            let is_dir = tokio::fs::symlink_metadata(entry.path()).await.is_ok_and(|m| m.is_dir());
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                owners.push(name.to_owned());
            }
        }
        Ok(owners)
    }

    async fn claimed_by(&self, owner: Option<&str>) -> Result<Vec<String>, MailboxError> {
        let dir = owner.map_or_else(|| self.processing.clone(), |owner| self.processing.join(owner));
        Ok(Self::files(&dir).await?.into_iter().map(|(name, ..)| name).collect())
    }

    async fn create_owner(&self, owner: &str) -> Result<(), MailboxError> {
        let dir = self.processing.join(owner);
        tokio::fs::create_dir_all(&dir).await.map_err(io("creating", &dir))
    }

    async fn read_lease(&self, owner: &str) -> Result<Option<String>, MailboxError> {
        let path = self.processing.join(owner).join(LEASE_FILE);
        match tokio::fs::read_to_string(&path).await {
            Ok(lease) => Ok(Some(lease)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path)(e)),
        }
    }

    async fn write_lease(&self, owner: &str, lease: &str) -> Result<(), MailboxError> {
        let path = self.processing.join(owner).join(LEASE_FILE);
        tokio::fs::write(&path, lease).await.map_err(io("writing", &path))
    }

    async fn remove_lease(&self, owner: &str) -> Result<(), MailboxError> {
        let path = self.processing.join(owner).join(LEASE_FILE);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &path)(e)),
            _ => Ok(()),
        }
    }

    async fn take(&self, from: Option<&str>, name: &str, to: &str) -> Result<bool, MailboxError> {
        let source = from.map_or_else(|| self.processing.clone(), |owner| self.processing.join(owner)).join(name);
        match tokio::fs::rename(&source, self.processing.join(to).join(name)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("taking over", &source)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(id: &str) -> ClaimOwner {
        ClaimOwner::new(id, Duration::from_millis(400)).unwrap()
    }

    #[tokio::test]
    async fn claims_atomically_recovers_after_a_crash_and_never_overwrites() {
        let root = tempfile::tempdir().unwrap();
        let mailbox = LocalMailbox::open(root.path(), 1024, Duration::ZERO, owner("a")).await.unwrap();
        for (name, body) in
            [("a.edi", "A"), ("b.edi", "B"), (".hidden", "H"), ("c.edi.part", "P"), ("big.edi", &"x".repeat(2000))]
        {
            std::fs::write(mailbox.inbound_dir().join(name), body).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", mailbox.inbound_dir().join("link.edi")).unwrap();
        let mut waiting = mailbox.waiting().await.unwrap();
        waiting.sort();
        assert_eq!(waiting, ["a.edi", "b.edi", "big.edi"], "no hidden, partial or linked files");

        let a = mailbox.claim("a.edi").await.unwrap().unwrap().unwrap();
        assert_eq!(a.bytes, b"A");
        assert!(mailbox.claim("a.edi").await.unwrap().is_some(), "a claimed file is re-read by its owner");
        assert!(mailbox.claim("../etc/passwd").await.unwrap().is_none());
        assert!(mailbox.claim("gone.edi").await.unwrap().is_none());
        let too_large = mailbox.claim("big.edi").await.unwrap().unwrap().unwrap_err();
        assert!(too_large.reason.contains("2000 bytes; the limit is 1024"), "{too_large:?}");
        assert!(too_large.identity.starts_with("2000 bytes, modified "), "{too_large:?}");

        // A crash now: "a.edi" stays claimed and is found again on restart.
        let reopened = LocalMailbox::open(root.path(), 1024, Duration::ZERO, owner("a")).await.unwrap();
        let mut unfinished = reopened.unfinished().await.unwrap();
        unfinished.sort();
        assert_eq!(unfinished, ["a.edi", "big.edi"]);

        let done = reopened.finish("a.edi", &Outcome::Processed).await.unwrap();
        assert_eq!(done, root.path().join("processed/a.edi"));
        std::fs::write(mailbox.inbound_dir().join("a.edi"), "A again").unwrap();
        reopened.claim("a.edi").await.unwrap().unwrap().unwrap();
        let again = reopened.finish("a.edi", &Outcome::Processed).await.unwrap();
        assert_eq!(again, root.path().join("processed/a.edi.1"));
        assert_eq!(std::fs::read_to_string(root.path().join("processed/a.edi")).unwrap(), "A");

        let quarantined = Outcome::Quarantined { reason: "too large".into() };
        assert_eq!(reopened.destination("big.edi", &quarantined).await, Path::new("quarantine/big.edi"));
        let q = reopened.finish("big.edi", &quarantined).await.unwrap();
        assert_eq!(q, root.path().join("quarantine/big.edi"));
        assert_eq!(std::fs::read_to_string(root.path().join("quarantine/big.edi.reason")).unwrap(), "too large\n");
        assert!(reopened.unfinished().await.unwrap().is_empty());
    }

    /// A partner's file named like a reason file, quarantined before the file it seems to
    /// explain: neither is ever written over.
    #[tokio::test]
    async fn quarantine_never_overwrites_what_a_partner_sent_whatever_its_name() {
        let root = tempfile::tempdir().unwrap();
        let mailbox = LocalMailbox::open(root.path(), 1024, Duration::ZERO, owner("a")).await.unwrap();
        let quarantined = |why: &str| Outcome::Quarantined { reason: why.into() };
        let partner_file = "ISA*partner's own file named x.edi.reason";
        for (name, content, why) in [("x.edi.reason", partner_file, "not EDI"), ("x.edi", "ISA*broken", "broken")] {
            std::fs::write(mailbox.inbound_dir().join(name), content).unwrap();
            mailbox.claim(name).await.unwrap().unwrap().unwrap();
            mailbox.finish(name, &quarantined(why)).await.unwrap();
        }
        let quarantine = root.path().join("quarantine");
        let read = |name: &str| std::fs::read_to_string(quarantine.join(name)).unwrap();
        assert_eq!(read("x.edi.reason"), partner_file, "the partner's file is kept as it came");
        assert_eq!(read("x.edi.reason.reason"), "not EDI\n");
        assert_eq!(read("x.edi.1"), "ISA*broken", "x.edi beside it, under the next free name");
        assert_eq!(read("x.edi.1.reason"), "broken\n");
        assert!(!quarantine.join("x.edi").exists(), "x.edi would have had its reason over the partner's file");
    }

    #[tokio::test]
    async fn a_growing_file_waits_and_a_link_swapped_in_is_refused_unread() {
        let root = tempfile::tempdir().unwrap();
        let mailbox = LocalMailbox::open(root.path(), 1024, Duration::from_millis(300), owner("a")).await.unwrap();
        let growing = mailbox.inbound_dir().join("growing.edi");
        std::fs::write(&growing, "ISA").unwrap();
        assert!(mailbox.waiting().await.unwrap().is_empty(), "just arrived");
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(150));
            let mut file = std::fs::OpenOptions::new().append(true).open(&growing).unwrap();
            std::io::Write::write_all(&mut file, b"*00").unwrap();
            assert!(mailbox.waiting().await.unwrap().is_empty(), "still being written");
        }
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(mailbox.waiting().await.unwrap(), ["growing.edi"], "settled");
        assert_eq!(mailbox.claim("growing.edi").await.unwrap().unwrap().unwrap().bytes, b"ISA*00*00*00");

        // Listed as a file, then swapped for a link to a secret before the claim.
        let secret = root.path().join("secret.txt");
        std::fs::write(&secret, "do not read").unwrap();
        std::fs::write(mailbox.inbound_dir().join("swap.edi"), "ISA").unwrap();
        std::fs::remove_file(mailbox.inbound_dir().join("swap.edi")).unwrap();
        std::os::unix::fs::symlink(&secret, mailbox.inbound_dir().join("swap.edi")).unwrap();
        let refused = mailbox.claim("swap.edi").await.unwrap().unwrap().unwrap_err();
        assert_eq!(refused.reason, "swap.edi is a link; links are never followed");
        let quarantined = Outcome::Quarantined { reason: refused.reason };
        mailbox.finish("swap.edi", &quarantined).await.unwrap();
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "do not read", "the target is untouched");
        assert!(std::fs::symlink_metadata(root.path().join("quarantine/swap.edi")).unwrap().is_symlink());
    }

    #[tokio::test]
    async fn instances_recover_only_their_own_or_expired_claims_and_refuse_a_twin() {
        let root = tempfile::tempdir().unwrap();
        // A claim left by a version that did not name owners.
        std::fs::create_dir_all(root.path().join("inbound/.processing")).unwrap();
        std::fs::write(root.path().join("inbound/.processing/old.edi"), "O").unwrap();
        let a = LocalMailbox::open(root.path(), 1024, Duration::ZERO, owner("a")).await.unwrap();
        let b = LocalMailbox::open(root.path(), 1024, Duration::ZERO, owner("b")).await.unwrap();
        for name in ["x.edi", "y.edi"] {
            std::fs::write(a.inbound_dir().join(name), name).unwrap();
        }
        assert_eq!(a.unfinished().await.unwrap(), ["old.edi"], "the legacy claim goes to the first to look");
        assert!(a.claim("x.edi").await.unwrap().is_some());
        assert!(b.claim("x.edi").await.unwrap().is_none(), "claimed by a");
        assert!(b.claim("y.edi").await.unwrap().is_some());
        assert_eq!(b.unfinished().await.unwrap(), ["y.edi"], "a's claims are not b's while a lives");

        // A second instance under a's id while a renews its lease is refused.
        let renewing = async {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                a.claims.beat(&a).await.unwrap();
            }
        };
        let (twin, ()) = tokio::join!(LocalMailbox::open(root.path(), 1024, Duration::ZERO, owner("a")), renewing);
        assert!(matches!(twin, Err(MailboxError::OwnerInUse { ref owner }) if owner == "a"), "{:?}", twin.err());

        // a dies without a word: b takes its claims once a's lease has read the same for a lease.
        drop(a);
        let mut unfinished = b.unfinished().await.unwrap();
        assert_eq!(unfinished, ["y.edi"], "a lease is not expired when first seen");
        tokio::time::sleep(Duration::from_millis(450)).await;
        unfinished = b.unfinished().await.unwrap();
        unfinished.sort();
        assert_eq!(unfinished, ["old.edi", "x.edi", "y.edi"]);
        assert_eq!(b.claim("x.edi").await.unwrap().unwrap().unwrap().bytes, b"x.edi");

        // b stops cleanly: its lease is given up and a new instance takes over at once.
        b.claims.release(&b).await.unwrap();
        let c = LocalMailbox::open(root.path(), 1024, Duration::ZERO, owner("c")).await.unwrap();
        assert_eq!(c.unfinished().await.unwrap().len(), 3);
    }
}
