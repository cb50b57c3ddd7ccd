//! The background node's log file (`spored start` → `<data dir>/spored.log`): rotated by size,
//! so a node that runs for months does not fill its disk. `start` names the file in
//! `SPORED_LOG_FILE`; the node's stdout and stderr are that file. When it grows past the
//! limit it becomes `spored.log.1` (older ones move to `.2` and `.3`; the oldest is dropped)
//! and a fresh file takes over both descriptors. `spored log -f` follows across the change.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Rotated files kept besides the current one.
const KEPT: u32 = 3;
/// How often the size is looked at.
const EVERY: Duration = Duration::from_secs(5);

/// `path.N`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// When this process logs to a file `start` named (`SPORED_LOG_FILE`), rotates it on a
/// thread of its own whenever it exceeds `max_bytes`.
pub fn rotate_when_large(max_bytes: u64) {
    let Some(path) = std::env::var_os("SPORED_LOG_FILE").map(PathBuf::from) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("log-rotation".into())
        .spawn(move || loop {
            std::thread::sleep(EVERY);
            let big = std::fs::metadata(&path).is_ok_and(|m| m.len() > max_bytes);
            // only the process whose stderr is that file rotates it (during an update's health
            // check the old process still runs, its stderr already rotated away or not)
            if big && stderr_is(&path) {
                if let Err(e) = rotate(&path) {
                    tracing::warn!(error = %e, path = %path.display(), "cannot rotate the log");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no log rotation");
    }
}

/// Whether this process's stderr is the file at `path`.
fn stderr_is(path: &Path) -> bool {
    use std::os::fd::AsFd as _;
    let ours = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata());
    match (ours, std::fs::metadata(path)) {
        (Ok(ours), Ok(file)) => ours.ino() == file.ino() && ours.dev() == file.dev(),
        _ => false,
    }
}

/// Moves `path` to `path.1` (and the older ones up), then points stdout and stderr at a new
/// `path`.
pub fn rotate(path: &Path) -> std::io::Result<()> {
    shift(path)?;
    let fresh = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for fd in [1, 2] {
        // SAFETY: dup2 onto the process's own stdout/stderr; the old file stays open until
        // no descriptor names it.
        if unsafe { libc::dup2(fresh.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `path` → `path.1` → `path.2` → `path.3`; the oldest is dropped.
pub fn shift(path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(numbered(path, KEPT));
    for n in (1..KEPT).rev() {
        let _ = std::fs::rename(numbered(path, n), numbered(path, n + 1));
    }
    std::fs::rename(path, numbered(path, 1))
}

/// Whether the file at `path` is no longer the one `open` reads (rotated away, or cut short).
pub fn replaced(path: &Path, open: &std::fs::File, position: u64) -> bool {
    match (std::fs::metadata(path), open.metadata()) {
        (Ok(now), Ok(ours)) => now.ino() != ours.ino() || now.len() < position,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_three_old_files_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spored.log");
        // the names only: this test process's stdout and stderr must not move
        for i in 0..5 {
            std::fs::write(&path, format!("generation {i}\n")).unwrap();
            shift(&path).unwrap();
        }
        let read = |n| std::fs::read_to_string(numbered(&path, n)).unwrap();
        assert_eq!(read(1), "generation 4\n");
        assert_eq!(read(3), "generation 2\n");
        assert!(!numbered(&path, 4).exists());
    }
}
