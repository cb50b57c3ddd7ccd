//! The data dir (reference §a.2 layout, same file names): identity, config, store, llm settings.
//! Chosen by `--data-dir`, else `SPORE_HOME`, else `~/.spore`.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use spore_actors::store::STORE_FILE;
use spore_actors::Store;
use spore_spec::crypto::from_hex;
use spore_spec::Identity;

/// Paths inside one data dir.
#[derive(Clone, Debug)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    /// `--data-dir` > `SPORE_HOME` > `~/.spore`.
    pub fn locate(flag: Option<&Path>) -> Result<DataDir> {
        if let Some(dir) = flag {
            return Ok(DataDir {
                root: dir.to_path_buf(),
            });
        }
        if let Some(dir) = std::env::var_os("SPORE_HOME").filter(|d| !d.is_empty()) {
            return Ok(DataDir {
                root: PathBuf::from(dir),
            });
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .context("neither --data-dir, SPORE_HOME nor HOME is set")?;
        Ok(DataDir {
            root: PathBuf::from(home).join(".spore"),
        })
    }

    pub fn private_key(&self) -> PathBuf {
        self.root.join("identity/private_key")
    }

    pub fn node_id_file(&self) -> PathBuf {
        self.root.join("identity/node_id")
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn llm(&self) -> PathBuf {
        self.root.join("llm.toml")
    }

    /// The running node's control socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("spored.sock")
    }

    /// Corpora made by `spored prepare`, named by their SHA-256.
    pub fn datasets(&self) -> PathBuf {
        self.root.join("datasets")
    }

    pub fn store(&self) -> PathBuf {
        self.root.join("db").join(STORE_FILE)
    }

    pub fn open_store(&self) -> Result<Store> {
        Store::open(&self.store())
            .with_context(|| format!("opening the store in {}", self.root.display()))
    }

    pub fn has_identity(&self) -> bool {
        self.private_key().exists()
    }

    /// Loads the identity seed (64 hex characters), tightening the key file to mode 0600.
    pub fn load_identity(&self) -> Result<Identity> {
        let path = self.private_key();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (run `spored init` first)", path.display()))?;
        let seed: [u8; 32] = from_hex(text.trim())
            .and_then(|bytes| bytes.try_into().ok())
            .with_context(|| {
                format!("{} is not a 64-hex-character Ed25519 seed", path.display())
            })?;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {} to mode 0600", path.display()))?;
            tracing::warn!(path = %path.display(), was = format!("{mode:o}"), "private key was readable by others; now 0600");
        }
        Ok(Identity::from_seed(seed))
    }

    /// Makes the data dir private (mode 0700: the store, the control socket, the settings are
    /// the node's): created so when missing; tightened when it holds a node's files or nothing,
    /// never when it is some other directory (`--data-dir /tmp` must not change /tmp).
    pub fn make_private(&self) -> Result<()> {
        if !self.root.exists() {
            std::fs::create_dir_all(&self.root)
                .with_context(|| format!("creating {}", self.root.display()))?;
        } else {
            let ours = ["identity", "db", "config.toml"]
                .iter()
                .any(|name| self.root.join(name).exists());
            let empty = std::fs::read_dir(&self.root)
                .map(|mut entries| entries.next().is_none())
                .unwrap_or(false);
            if !ours && !empty {
                return Ok(());
            }
        }
        let mode = std::fs::metadata(&self.root)?.permissions().mode() & 0o777;
        if mode != 0o700 {
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {} to mode 0700", self.root.display()))?;
            if mode & 0o077 != 0 {
                tracing::info!(path = %self.root.display(), was = format!("{mode:o}"), "data dir made private (0700)");
            }
        }
        Ok(())
    }

    /// Loads the identity, creating a new one (key file mode 0600) when there is none.
    /// Returns whether it was created.
    pub fn ensure_identity(&self) -> Result<(Identity, bool)> {
        self.make_private()?;
        if self.has_identity() {
            return Ok((self.load_identity()?, false));
        }
        let identity = Identity::generate();
        write_atomically(&self.private_key(), identity.seed_hex().as_bytes(), 0o600)?;
        write_atomically(&self.node_id_file(), identity.node_id().as_bytes(), 0o644)?;
        Ok((identity, true))
    }
}

/// Writes `bytes` to a temp file beside `path` with `mode`, syncs it, then renames it over
/// `path`: a crash leaves the old file or the new one, never half of either.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().context("path has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let Some(name) = path.file_name() else {
        bail!("{} has no file name", path.display());
    };
    // one temp file per writer: two commands saving at once cannot mix their bytes
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}
