//! A real OpenSSH server (Debian's `sshd`) on a loopback port, for the SFTP
//! mailbox tests: its own host key, config and authorized key in a temporary
//! folder, stopped on drop. The server's files are this machine's, so a test
//! drops files into `root()` and reads what the client wrote there.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use crate::free_port;

/// `$SSHD_BIN`, else Debian's path.
fn sshd_binary() -> PathBuf {
    std::env::var_os("SSHD_BIN").map_or_else(|| PathBuf::from("/usr/sbin/sshd"), PathBuf::from)
}

/// Who runs the tests: the one account this sshd lets in.
fn current_user() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "root".to_owned())
}

pub struct SshServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .context("running ssh-keygen (Debian's openssh-client)")?;
    if !status.success() {
        bail!("ssh-keygen failed for {}", path.display());
    }
    Ok(())
}

impl SshServer {
    /// Starts sshd for the current user, public-key login with a fresh client
    /// key (`client_key()`), password login enabled but no password known.
    pub fn start() -> anyhow::Result<Self> {
        let sshd = sshd_binary();
        if !sshd.is_file() {
            bail!("{} is missing: install Debian's openssh-server (deploy/test.sh does)", sshd.display());
        }
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let path = |name: &str| dir.path().join(name);
        keygen(&path("host_ed25519"))?;
        keygen(&path("client_ed25519"))?;
        std::fs::copy(path("client_ed25519.pub"), path("authorized_keys"))?;
        std::fs::create_dir_all(path("mailbox"))?;
        let user = current_user();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {pid}\nAuthorizedKeysFile {keys}\n\
             StrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
             UsePAM no\nPermitRootLogin yes\nAllowUsers {user}\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
            host_key = path("host_ed25519").display(),
            pid = path("sshd.pid").display(),
            keys = path("authorized_keys").display(),
        );
        std::fs::write(path("sshd_config"), config)?;
        // As root, sshd wants its privilege-separation folder.
        if user == "root" {
            std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        }
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(path("sshd_config"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path("sshd.log"))?)
            .spawn()
            .with_context(|| format!("starting {}", sshd.display()))?;
        let mut server = SshServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || server.child.try_wait()?.is_some() {
                bail!("sshd did not start: {}", server.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// The user tests log in as.
    pub fn user(&self) -> String {
        current_user()
    }

    /// A folder on the server for the mailbox (absolute: the same path over SFTP).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("mailbox")
    }

    /// The private key the server accepts.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// A `known_hosts` file that vouches for this server's host key.
    pub fn known_hosts(&self) -> anyhow::Result<PathBuf> {
        let public = std::fs::read_to_string(self.dir.path().join("host_ed25519.pub"))?;
        let mut fields = public.split_whitespace();
        let (kind, key) = (fields.next().unwrap_or_default(), fields.next().unwrap_or_default());
        let path = self.dir.path().join("known_hosts");
        std::fs::write(&path, format!("[127.0.0.1]:{} {kind} {key}\n", self.port))?;
        Ok(path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
