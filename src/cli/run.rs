//! `spored run`: the node. Flags override the config file; `--dump-config` prints the result.

use anyhow::Result;

use super::Context;
use crate::config::NodeMode;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Mesh listen address
    #[arg(long)]
    pub host: Option<String>,
    /// Mesh port
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Peer to dial (repeatable; replaces the configured peers)
    #[arg(long = "peer", short = 'c', value_name = "ADDR")]
    pub peers: Vec<String>,
    /// Pin the task to work on
    #[arg(long)]
    pub task: Option<String>,
    /// Node mode
    #[arg(long, value_enum)]
    pub mode: Option<NodeMode>,
    /// Relay only: sync and serve, run no experiments (same as --mode relay)
    #[arg(long, conflicts_with_all = ["mode", "verify_only"])]
    pub no_train: bool,
    /// Verify others' claims, propose nothing (same as --mode verify-only)
    #[arg(long, conflicts_with = "mode")]
    pub verify_only: bool,
    /// Explorer address
    #[arg(long)]
    pub web_host: Option<String>,
    /// Explorer port
    #[arg(long, short = 'w')]
    pub web_port: Option<u16>,
    /// Share of the machine an experiment may use (percent)
    #[arg(long, short = 'r', value_parser = clap::value_parser!(u8).range(1..=100))]
    pub resource: Option<u8>,
    /// Enable local-network discovery (mDNS)
    #[arg(long)]
    pub mdns: bool,
    /// Enable signed self-update
    #[arg(long, overrides_with = "no_auto_update")]
    pub auto_update: bool,
    /// Disable signed self-update
    #[arg(long, overrides_with = "auto_update")]
    pub no_auto_update: bool,
    /// Print the effective config (file + flags) as TOML and exit
    #[arg(long)]
    pub dump_config: bool,
}

/// The config file's settings with `args` on top.
pub fn effective_config(ctx: &Context, args: &RunArgs) -> Result<crate::config::NodeConfig> {
    let mut c = ctx.config.clone();
    if let Some(host) = &args.host {
        c.host = host.clone();
    }
    if let Some(port) = args.port {
        c.port = port;
    }
    if !args.peers.is_empty() {
        c.peer = args.peers.clone();
    }
    if let Some(task) = &args.task {
        c.task_id = task.clone();
    }
    if let Some(mode) = args.mode {
        c.mode = mode;
    }
    if args.no_train {
        c.mode = NodeMode::Relay;
    }
    if args.verify_only {
        c.mode = NodeMode::VerifyOnly;
    }
    if let Some(host) = &args.web_host {
        c.web_host = host.clone();
    }
    if let Some(port) = args.web_port {
        c.web_port = port;
    }
    if let Some(resource) = args.resource {
        c.resource = resource;
    }
    if args.mdns {
        c.mdns = true;
    }
    if args.auto_update {
        c.auto_update = true;
    }
    if args.no_auto_update {
        c.auto_update = false;
    }
    c.data_dir = ctx.data_dir.root.display().to_string();
    c.check()?;
    Ok(c)
}

pub fn run(ctx: Context, args: RunArgs) -> Result<()> {
    let config = effective_config(&ctx, &args)?;
    if args.dump_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    anyhow::bail!(
        "the node itself (mesh, research loop, explorer) is not built yet; this build has the \
         protocol, the store and the offline commands (see `spored --help`)"
    )
}
