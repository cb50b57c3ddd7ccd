//! The node's configuration: `<data_dir>/config.toml` with the reference's keys (§a.3) plus
//! ours, then command-line flags on top. Unknown keys and wrong types are errors that name the
//! key, so a typo never silently falls back to a default.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// The reference network's public bootstrap peer.
pub const REFERENCE_BOOTSTRAP: &str = "peer.sporemesh.com:7470";

/// What a node spends its time on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum NodeMode {
    /// Runs experiments on the active task, verifies others, relays.
    #[default]
    Research,
    /// Re-runs other nodes' claims and relays; proposes nothing.
    VerifyOnly,
    /// Syncs, stores and relays; runs nothing.
    Relay,
}

impl NodeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeMode::Research => "research",
            NodeMode::VerifyOnly => "verify-only",
            NodeMode::Relay => "relay",
        }
    }
}

/// How the node's log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Every setting of a node. Field names of the reference's `NodeConfig` are kept, so a
/// reference `config.toml` loads as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Address the listeners (legacy TCP and libp2p) bind.
    pub host: String,
    /// Port of the reference's plain-TCP protocol (the legacy bridge), as in the reference.
    pub port: u16,
    /// Whether to listen on `port` for reference (0.6.0) nodes; dialling `host:port` peers
    /// works either way.
    pub legacy_listen: bool,
    /// Port of the libp2p mesh (encrypted links between spored nodes).
    pub p2p_port: u16,
    /// Peers dialled at start and re-dialled when they drop: `host:port` speaks the reference's
    /// protocol, a multiaddr (`/ip4/…/tcp/…/p2p/…`) libp2p.
    pub peer: Vec<String>,
    /// Public bootstrap peers, dialled besides `peer` (the reference's is
    /// `peer.sporemesh.com:7470`); `[]` or `--no-bootstrap` for none.
    pub bootstrap: Vec<String>,
    /// Pinned task; empty means the most active one.
    pub task_id: String,
    /// Signed self-update (the AutoOperator; idle without `update_manifest_url`).
    pub auto_update: bool,
    pub update_interval_sec: u64,
    pub update_manifest_url: String,
    /// Ed25519 public keys (64 hex) whose signature a release manifest must carry; no key is
    /// built in yet, so updates need one here.
    pub release_keys: Vec<String>,
    /// Informational: the data dir is chosen by `--data-dir`, `SPORE_HOME` or `~/.spore`.
    pub data_dir: String,
    /// research, verify-only or relay.
    pub mode: NodeMode,
    /// Address the explorer binds (loopback unless changed on purpose).
    pub web_host: String,
    pub web_port: u16,
    /// Local-network discovery (multicast); off by default.
    pub mdns: bool,
    /// Dial and tell others about peers on loopback, private and link-local addresses learnt
    /// from other peers (PEX, identify); off by default (a LAN network turns it on).
    pub allow_local_peers: bool,
    /// Share of the machine an experiment may use, 1..=100 (percent).
    pub resource: u8,
    /// Training budget per experiment in seconds; 0 uses the task's `time_budget`.
    pub time_budget: u64,
    /// Stop researching after this many experiments (the node keeps serving); 0 = never.
    pub max_experiments: u64,
    /// Base probability of re-running another node's record of this node's hardware class
    /// (the reference's 0.05; raised for publishers in low standing and frontier records).
    pub verify_probability: f64,
    /// Log filter (`info`, `warn,spore_actors=debug`, …); empty: the built-in one. `RUST_LOG`
    /// wins at start; SIGHUP applies this one.
    pub log_level: String,
    /// `text` (one line per event, for people) or `json` (one JSON object per line, for log
    /// collectors); read at start.
    pub log_format: LogFormat,
    /// The background log (`spored start`) is rotated past this size (MiB); three old files
    /// are kept.
    pub log_max_mb: u64,
    /// Python that command tasks' evaluators run under, in the sandbox (a name on PATH or a
    /// path; Debian's `/usr/bin/python3` first).
    pub sandbox_python: String,
    /// Limits of one sandboxed run (wall and CPU time are the task's budget).
    pub sandbox_memory_mb: u64,
    pub sandbox_processes: u64,
    pub sandbox_output_kb: u64,
    /// A Python with PyTorch, to re-run the reference's `python_train_script` records in the
    /// sandbox; empty: such records are skipped (with the reason in the log).
    pub torch_python: String,
    /// The reference's workspace for those reruns: a directory with its `prepare.py`,
    /// `batching.py` and (optionally) `cache/` (its `~/.cache/autoresearch`, bound read-only).
    pub reference_workspace: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            host: "0.0.0.0".into(),
            port: 7470,
            legacy_listen: true,
            p2p_port: 7471,
            peer: Vec::new(),
            bootstrap: vec![REFERENCE_BOOTSTRAP.into()],
            task_id: String::new(),
            auto_update: true,
            update_interval_sec: 21600,
            update_manifest_url: String::new(),
            release_keys: Vec::new(),
            data_dir: String::new(),
            mode: NodeMode::Research,
            web_host: "127.0.0.1".into(),
            web_port: 8470,
            mdns: false,
            allow_local_peers: false,
            resource: 100,
            time_budget: 0,
            max_experiments: 0,
            verify_probability: 0.05,
            log_level: String::new(),
            log_format: LogFormat::Text,
            log_max_mb: 64,
            sandbox_python: "python3".into(),
            sandbox_memory_mb: 2048,
            sandbox_processes: 64,
            sandbox_output_kb: 1024,
            torch_python: String::new(),
            reference_workspace: String::new(),
        }
    }
}

impl NodeConfig {
    /// Reads `path`; a missing file is the default config.
    pub fn load(path: &Path) -> Result<NodeConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let config =
            Self::parse(&text).with_context(|| format!("invalid config {}", path.display()))?;
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<NodeConfig> {
        let config: NodeConfig =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
        config.check()?;
        Ok(config)
    }

    /// Rules serde cannot express.
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.verify_probability) {
            anyhow::bail!(
                "verify_probability must be between 0 and 1, got {}",
                self.verify_probability
            );
        }
        if self.log_max_mb == 0 {
            anyhow::bail!("log_max_mb must be at least 1");
        }
        if !(1..=100).contains(&self.resource) {
            anyhow::bail!("resource must be between 1 and 100, got {}", self.resource);
        }
        if self.sandbox_memory_mb < 16 || self.sandbox_processes < 1 || self.sandbox_output_kb < 1 {
            anyhow::bail!(
                "sandbox_memory_mb (at least 16), sandbox_processes and sandbox_output_kb (at \
                 least 1) are too small"
            );
        }
        Ok(())
    }

    /// How this node runs sandboxed code; nothing bound into the sandbox may show `data_dir`
    /// or the user's home.
    pub fn sandbox(&self, data_dir: &Path) -> spore_actors::command_task::SandboxOptions {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let mut protected = vec![data_dir.to_path_buf()];
        protected.extend(std::env::var_os("HOME").map(std::path::PathBuf::from));
        spore_actors::command_task::SandboxOptions {
            python: self.sandbox_python.clone(),
            memory_mb: self.sandbox_memory_mb,
            processes: self.sandbox_processes,
            output_bytes: (self.sandbox_output_kb as usize) << 10,
            torch_python: some(&self.torch_python),
            reference_workspace: some(&self.reference_workspace).map(Into::into),
            protected,
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config always serialises")
    }

    /// Writes `path` atomically (temp file, then rename): for a new config file only; a
    /// user's file is changed key by key ([`set_key`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::data_dir::write_atomically(path, self.to_toml().as_bytes(), 0o644)
    }
}

/// Sets `key` to `value` in the config file at `path` (created when missing), leaving every
/// other line, comment and blank as it was. The result must still be a valid config, else the
/// file is not touched.
pub fn set_key(path: &Path, key: &str, value: impl Into<toml_edit::Value>) -> Result<()> {
    edit_toml(
        path,
        0o644,
        |doc| set_keeping_comment(doc, key, value.into()),
        |text| NodeConfig::parse(text).map(drop),
    )
}

/// Sets `key` to `value`, keeping the comment and spacing around an old value
/// (`task_id = "…"  # my run` stays commented).
pub fn set_keeping_comment(
    doc: &mut toml_edit::DocumentMut,
    key: &str,
    mut value: toml_edit::Value,
) {
    if let Some(old) = doc.get(key).and_then(toml_edit::Item::as_value) {
        *value.decor_mut() = old.decor().clone();
    }
    doc[key] = toml_edit::Item::Value(value);
}

/// Applies `change` to the TOML document at `path` (an empty one when missing) and writes it
/// back atomically with `mode`, keeping comments and layout, if the new text passes `check`.
/// The file must parse as TOML first.
pub fn edit_toml(
    path: &Path,
    mode: u32,
    change: impl FnOnce(&mut toml_edit::DocumentMut),
    check: impl FnOnce(&str) -> Result<()>,
) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end())
    })?;
    change(&mut doc);
    let new = doc.to_string();
    // checked before the file is replaced: a change that breaks it is never written
    check(&new).with_context(|| format!("the change would make {} invalid", path.display()))?;
    // a link is followed (the file it names is changed, the link stays), and the file keeps a
    // mode the user made stricter
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mode = match std::fs::metadata(&target) {
        Ok(meta) => {
            use std::os::unix::fs::PermissionsExt as _;
            mode & meta.permissions().mode() & 0o777
        }
        Err(_) => mode,
    };
    crate::data_dir::write_atomically(&target, new.as_bytes(), mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_config_loads() {
        let text = "host = \"0.0.0.0\"\nport = 7470\npeer = ['10.0.0.1:7470']\ntask_id = \"\"\n\
                    auto_update = true\nupdate_interval_sec = 21600\n\
                    update_manifest_url = \"https://example.invalid/m.json\"\ndata_dir = \"/root/.spore\"\n";
        let c = NodeConfig::parse(text).unwrap();
        assert_eq!(c.peer, vec!["10.0.0.1:7470"]);
        assert_eq!(c.mode, NodeMode::Research);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let e = NodeConfig::parse("prot = 1\n").unwrap_err().to_string();
        assert!(e.contains("prot"), "{e}");
        let e = NodeConfig::parse("port = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("port"), "{e}");
        let e = NodeConfig::parse("mode = \"fast\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode") || e.contains("fast"), "{e}");
        assert!(NodeConfig::parse("resource = 0\n").is_err());
    }

    #[test]
    fn setting_a_key_keeps_the_users_comments_and_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let text = "# my node\nport = 7480   # not the default\n\n# pinned below\ntask_id = \"old\" # my run\npeer = [\n  \"10.0.0.1:7470\", # office\n]\n";
        std::fs::write(&path, text).unwrap();
        set_key(&path, "task_id", "new").unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(after, text.replace("\"old\"", "\"new\""));
        set_key(&path, "mode", "relay").unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(
            after.starts_with(&text.replace("\"old\"", "\"new\"")),
            "{after}"
        );
        assert_eq!(NodeConfig::parse(&after).unwrap().mode, NodeMode::Relay);
        // a value the config refuses leaves the file as it was
        assert!(set_key(&path, "resource", 0).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
        // a file the user made private stays private; a link stays a link
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        set_key(&link, "task_id", "via-link").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("task_id = \"via-link\" # my run"));
    }

    #[test]
    fn round_trips_through_toml() {
        let c = NodeConfig {
            peer: vec!["/ip4/127.0.0.1/tcp/1".into()],
            mode: NodeMode::VerifyOnly,
            ..Default::default()
        };
        assert_eq!(NodeConfig::parse(&c.to_toml()).unwrap(), c);
    }
}
