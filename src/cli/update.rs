//! Applying an update the AutoOperator checked, and `spored release` for operators.
//!
//! Applying: the node has stopped cleanly; the new binary is started with the same arguments and
//! this process waits for its health check: within 90 s the new node must answer on its control
//! socket and report the manifest's version. Healthy → the pid file (if `spored start` wrote one)
//! names the new process, `bin/current` names its binary, and this process exits. Otherwise the
//! new process is stopped, the version is written to `bin/refused` (never tried again), and this
//! (the previous) binary starts again with the same arguments.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use spore_actors::auto_operator::{self, UpdateReady};
use spore_spec::Identity;
use tracing::{info, warn};

use crate::data_dir::DataDir;

const HEALTH_WAIT: Duration = Duration::from_secs(90);

pub fn start_update(data_dir: &DataDir, update: UpdateReady) -> Result<()> {
    // the node's signal handlers died with its runtime: SIGTERM/SIGINT end this wait again
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
    let mut argv = std::env::args_os();
    argv.next();
    let mut child = std::process::Command::new(&update.binary)
        .args(argv)
        .env("SPORED_POST_INSTALL_STEPS", update.steps.join(","))
        .spawn()
        .with_context(|| format!("starting {}", update.binary.display()))?;
    let socket = data_dir.socket();
    let started = Instant::now();
    let verdict = loop {
        if let Some(status) = child.try_wait()? {
            if status.code() == Some(i32::from(super::Busy::EXIT_CODE)) {
                break Err(Verdict::NotItsFault(format!(
                    "something it needs was still held ({status})"
                )));
            }
            break Err(Verdict::Failed(format!("it exited ({status})")));
        }
        if started.elapsed() > HEALTH_WAIT {
            break Err(Verdict::Failed(format!(
                "it did not answer within {} s",
                HEALTH_WAIT.as_secs()
            )));
        }
        if let Ok(reply) = crate::control::request(&socket, "info", &[]) {
            let version = reply.get("version").and_then(|v| v.as_str()).unwrap_or("");
            if version == update.version {
                break Ok(());
            }
            break Err(Verdict::Failed(format!(
                "it reports version {version:?}, not {}",
                update.version
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let bin_dir = data_dir.root.join("bin");
    match verdict {
        Ok(()) => {
            let pid_file = data_dir.root.join("spored.pid");
            let ours = std::fs::read_to_string(&pid_file)
                .ok()
                .is_some_and(|p| p.trim() == std::process::id().to_string());
            if ours {
                crate::data_dir::write_atomically(
                    &pid_file,
                    format!("{}\n", child.id()).as_bytes(),
                    0o644,
                )?;
            }
            crate::data_dir::write_atomically(
                &bin_dir.join("current"),
                format!("{} {}\n", update.version, update.binary.display()).as_bytes(),
                0o644,
            )?;
            info!(version = %update.version, pid = child.id(), "update healthy; the new binary runs the node");
            // under systemd (`Type=notify`, `NotifyAccess=all`) the new process is the service
            crate::systemd::notify(&format!("MAINPID={}\nREADY=1", child.id()));
            Ok(())
        }
        Err(Verdict::NotItsFault(reason)) if deferred_again(&bin_dir, &update.version)? => {
            warn!(version = %update.version, reason, "the update could not start here; running the previous binary, the update is tried again at the next check");
            stop_child(&mut child)?;
            exec_self()
        }
        Err(Verdict::NotItsFault(reason)) | Err(Verdict::Failed(reason)) => {
            warn!(version = %update.version, reason, "update failed its health check: rolling back to the previous binary");
            stop_child(&mut child)?;
            let refused = bin_dir.join("refused");
            let mut list = std::fs::read_to_string(&refused).unwrap_or_default();
            list.push_str(&format!("{}\n", update.version));
            crate::data_dir::write_atomically(&refused, list.as_bytes(), 0o644)?;
            exec_self()
        }
    }
}

/// Why an update was not kept.
enum Verdict {
    /// The release failed: refused for good (`bin/refused`).
    Failed(String),
    /// It could not start here for a reason outside it (exit status 75: the store or a port
    /// still held): tried again at the next check.
    NotItsFault(String),
}

/// A release that could not start for a reason outside it is tried again, but at most
/// [`DEFERRALS`] times: one that always exits so would otherwise restart the node for ever.
/// Records the try in `bin/deferred`; false once the release has had its tries.
fn deferred_again(bin_dir: &std::path::Path, version: &str) -> Result<bool> {
    let path = bin_dir.join("deferred");
    let mut list = std::fs::read_to_string(&path).unwrap_or_default();
    if list.lines().filter(|v| *v == version).count() >= DEFERRALS {
        return Ok(false);
    }
    list.push_str(&format!("{version}\n"));
    crate::data_dir::write_atomically(&path, list.as_bytes(), 0o644)?;
    Ok(true)
}

/// Tries of a release that could not start for a reason outside it, before it is refused.
const DEFERRALS: usize = 3;

/// Stops what the update started, if it still runs (SIGTERM, then SIGKILL after 30 s).
fn stop_child(child: &mut std::process::Child) -> Result<()> {
    // a child already reaped: its pid may be another process's by now
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    // SAFETY: kill only sends a signal to the child this process started and has not reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// Re-executes this binary with the same arguments (everything is closed: store, sockets).
pub fn exec_self() -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let mut argv = std::env::args_os();
    let program = std::env::current_exe().context("cannot find the spored executable")?;
    argv.next();
    let err = std::process::Command::new(program).args(argv).exec();
    bail!("restart failed: {err}")
}

/// At `spored run`: when an update installed into this data dir (`bin/current`: version and
/// path) is newer than this binary, run that one instead, with the same arguments, so a restart by
/// systemd or `spored start` keeps the update. Anything unreadable or missing: run on as is.
pub fn run_installed_update(data_dir: &DataDir) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(data_dir.root.join("bin").join("current")) else {
        return Ok(());
    };
    let Some((version, path)) = text.trim().split_once(' ') else {
        return Ok(());
    };
    let path = PathBuf::from(path);
    let newer = auto_operator::is_newer(version, &auto_operator::version());
    let same = std::env::current_exe().is_ok_and(|me| me == path);
    if !newer || same || !path.is_file() {
        return Ok(());
    }
    info!(version, binary = %path.display(), "running the update installed in this data dir");
    use std::os::unix::process::CommandExt as _;
    let mut argv = std::env::args_os();
    argv.next();
    let err = std::process::Command::new(&path).args(argv).exec();
    warn!(error = %err, "cannot run the installed update; running this binary");
    Ok(())
}

#[derive(clap::Subcommand, Debug)]
pub enum ReleaseCommand {
    /// Make a release key (an Ed25519 seed, mode 0600) and print its public key
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print a signed release manifest for a binary
    Manifest {
        /// The release key (64 hex characters, as `keygen` writes it)
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The binary: its SHA-256 goes into the manifest
        #[arg(long, value_name = "FILE")]
        binary: PathBuf,
        /// Where nodes download it (https://, or file:// for local mirrors)
        #[arg(long)]
        url: String,
        #[arg(long)]
        version: String,
        /// Post-install step (repeatable): backfill_tasks, migrate_store
        #[arg(long = "step")]
        steps: Vec<String>,
        /// Platform of the binary (default: this machine's, e.g. linux-x86_64)
        #[arg(long)]
        platform: Option<String>,
        /// Days the manifest is valid; nodes refuse it afterwards (publish a fresh one). 0: no
        /// expiry, the format nodes of releases before expiries need (nodes since refuse it)
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3650))]
        valid_days: u32,
    },
}

pub fn release(cmd: ReleaseCommand) -> Result<()> {
    match cmd {
        ReleaseCommand::Keygen { out } => {
            if out.exists() {
                bail!("{} exists; not overwriting a key", out.display());
            }
            let key = Identity::generate();
            crate::data_dir::write_atomically(&out, key.seed_hex().as_bytes(), 0o600)?;
            spore_actors::say!("{}", key.node_id());
            Ok(())
        }
        ReleaseCommand::Manifest {
            key,
            binary,
            url,
            version,
            steps,
            platform,
            valid_days,
        } => {
            let hex = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let seed: [u8; 32] = spore_spec::crypto::from_hex(hex.trim())
                .and_then(|b| b.try_into().ok())
                .with_context(|| format!("{} is not a 64-hex key", key.display()))?;
            let bytes =
                std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
            let manifest = auto_operator::make_manifest(
                &Identity::from_seed(seed),
                &version,
                &[(
                    platform.unwrap_or_else(auto_operator::platform),
                    url,
                    spore_spec::crypto::sha256_hex(&bytes),
                )],
                &steps,
                spore_actors::unix_now(),
                (valid_days > 0).then(|| {
                    spore_actors::unix_now().saturating_add(i64::from(valid_days) * 86_400)
                }),
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            spore_actors::say!("{manifest}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_release_that_cannot_start_here_is_tried_three_times_then_refused() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..super::DEFERRALS {
            assert!(super::deferred_again(dir.path(), "9.9.0").unwrap());
        }
        assert!(!super::deferred_again(dir.path(), "9.9.0").unwrap());
        // another release has its own tries
        assert!(super::deferred_again(dir.path(), "9.9.1").unwrap());
    }
}
