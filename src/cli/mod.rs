//! The `spored` command line: one file per command group.

mod explorer;
mod inspect;
mod llm;
mod prepare;
mod profile;
mod research;
mod run;
mod service;
mod task;
mod train;
mod transfer;
mod update;
mod verify;
mod warmup;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use crate::config::NodeConfig;
use crate::data_dir::DataDir;
use spore_actors::{Store, StoreError};
use spore_spec::json::Value;

#[derive(Parser, Debug)]
#[command(
    name = "spored",
    version,
    about = "A Spore Mesh node: signed ML experiments, synced peer to peer"
)]
pub struct Cli {
    /// Data directory (default: $SPORE_HOME, else ~/.spore)
    #[arg(long, short = 'd', global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Config file (default: <data dir>/config.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print machine-readable JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the identity, config and store (idempotent)
    Init,
    /// Run the node
    Run(run::RunArgs),
    /// Run the node in the background (same flags as `run`): pid and log in the data dir
    Start(run::RunArgs),
    /// Stop the node `start` started, and wait for its clean stop
    Stop,
    /// Print the background node's log
    Log(service::LogArgs),
    /// Serve the explorer over this data dir without joining the network
    Explorer(explorer::ExplorerArgs),
    /// Manage tasks
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// List tasks (same as `task list`)
    Tasks,
    /// Summary of a task: counts, frontier size, best, recent records
    Status(inspect::TaskArg),
    /// The frontier of a task, best first
    Frontier(inspect::FrontierArgs),
    /// The experiment tree of a task
    Graph(inspect::GraphArgs),
    /// This node's signed profile
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Configure the LLM provider used to propose experiments
    Set(llm::SetArgs),
    /// Node id, addresses, data dir, active task
    Info,
    /// Print the version
    Version,
    /// Check signed objects in a JSON or JSONL file ('-' for stdin)
    Verify(verify::VerifyArgs),
    /// Write a task's manifest, records, control events and profiles as JSONL
    Export(transfer::ExportArgs),
    /// Verify and store every object of a JSONL file, all or nothing
    Import(transfer::ImportArgs),
    /// Make a dataset from your own text files for a task of your own
    Prepare(prepare::PrepareArgs),
    /// Train one config artifact in this process and print its metrics (what the runner starts)
    Train(train::TrainArgs),
    /// Prepare the GPU kernels of the task this node would research (a node on a GPU also does
    /// it when it starts)
    Warmup(warmup::WarmupArgs),
    /// Release keys and signed update manifests (for operators)
    #[command(subcommand)]
    Release(update::ReleaseCommand),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `spored man > spored.1; man ./spored.1`
    Man,
}

/// A node that could not start because something it needs is still held by another process
/// (the store, a port): not a fault of this binary. An update that exits so is tried again
/// later, never refused (`update::start_update`). Exit status 75 (`EX_TEMPFAIL`).
#[derive(Debug)]
pub struct Busy(pub String);

impl Busy {
    pub const EXIT_CODE: u8 = 75;
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Busy {}

/// What every command needs: where the data is, the effective config, output style.
pub struct Context {
    pub data_dir: DataDir,
    pub config_path: PathBuf,
    pub config: NodeConfig,
    pub json: bool,
}

impl Context {
    fn new(cli: &Cli) -> Result<Context> {
        let data_dir = DataDir::locate(cli.data_dir.as_deref())?;
        let config_path = cli.config.clone().unwrap_or_else(|| data_dir.config());
        if cli.config.is_some() && !config_path.exists() {
            anyhow::bail!("config file {} does not exist", config_path.display());
        }
        let config = NodeConfig::load(&config_path)?;
        Ok(Context {
            data_dir,
            config_path,
            config,
            json: cli.json,
        })
    }

    /// Answers read query `name` (`crate::query`): from the store when no node runs, else
    /// from the running node over its control socket, with the same code either way.
    pub fn query(&self, name: &str, args: Vec<(&str, Value)>) -> Result<Value> {
        let request = crate::query::request(name, &self.config.task_id, args);
        match self.store_unless_running()? {
            Some(store) => {
                #[allow(clippy::disallowed_methods)] // no node runs: this process owns the store
                let read = store.read()?;
                crate::query::answer(&read, &request).map_err(anyhow::Error::msg)
            }
            None => crate::control::query_running(&self.data_dir.socket(), request),
        }
    }

    /// The store, or `None` when a running node holds it (then commands go through the node,
    /// whether or not its socket is there yet).
    fn store_unless_running(&self) -> Result<Option<Store>> {
        match Store::open(&self.data_dir.store()) {
            Ok(store) => Ok(Some(store)),
            Err(StoreError::InUse { .. }) => Ok(None),
            Err(e) => Err(e)
                .with_context(|| format!("opening the store in {}", self.data_dir.root.display())),
        }
    }

    /// Stores signed objects this command made (frame bodies): into the store when no node
    /// runs, else through the running node, which also publishes them to its peers.
    pub fn publish(&self, bodies: Vec<String>) -> Result<Published> {
        match self.store_unless_running()? {
            Some(store) => {
                let out = spore_actors::ingest::ingest(&store, &bodies, None, false)?;
                let s = out.summary;
                Ok(Published {
                    rejected: s.rejected as i64,
                    problems: s.problems.iter().map(|p| p.to_string()).collect(),
                })
            }
            None => {
                let lines: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
                let reply =
                    crate::control::request_running(&self.data_dir.socket(), "publish", &lines)?;
                let n = |k: &str| reply.get(k).and_then(Value::as_i64).unwrap_or(0);
                let problems = match reply.get("problems") {
                    Some(Value::Array(list)) => list
                        .iter()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                Ok(Published {
                    rejected: n("rejected"),
                    problems,
                })
            }
        }
    }

    /// Tells a running node to take its config and LLM settings again (what SIGHUP does).
    /// `None` when no node runs; else `Some(the task it now pins)`.
    pub fn reload_running(&self) -> Result<Option<Option<String>>> {
        if self.store_unless_running()?.is_some() {
            return Ok(None);
        }
        let reply = crate::control::request_running(&self.data_dir.socket(), "reload", &[])?;
        if let Some(error) = reply.get("error").and_then(Value::as_str) {
            anyhow::bail!("saved, but the running node did not take it: {error}");
        }
        Ok(Some(
            reply
                .get("task_id")
                .and_then(Value::as_str)
                .map(str::to_string),
        ))
    }
}

/// What [`Context::publish`] did.
pub struct Published {
    pub rejected: i64,
    pub problems: Vec<String>,
}

impl Published {
    /// An error naming the first problem when anything was refused.
    pub fn ensure_stored(&self) -> Result<()> {
        if self.rejected > 0 {
            anyhow::bail!(
                "refused: {}",
                crate::output::clean(
                    self.problems
                        .first()
                        .map_or("no reason given", String::as_str)
                )
            );
        }
        Ok(())
    }
}

/// The `log_format` of the config this command line names, before anything else is set up
/// (an unreadable config is reported later, when the command loads it).
pub fn configured_log_format(cli: &Cli) -> crate::config::LogFormat {
    let Ok(data_dir) = DataDir::locate(cli.data_dir.as_deref()) else {
        return Default::default();
    };
    let path = cli.config.clone().unwrap_or_else(|| data_dir.config());
    NodeConfig::load(&path).map_or(Default::default(), |c| c.log_format)
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    // A training child needs no data dir, config or store.
    if let Command::Release(cmd) = cli.command {
        return update::release(cmd);
    }
    if let Command::Train(args) = cli.command {
        return train::run(args);
    }
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory as _;
        clap_complete::generate(shell, &mut Cli::command(), "spored", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::Man = cli.command {
        use clap::CommandFactory as _;
        clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
        return Ok(());
    }
    let ctx = Context::new(&cli)?;
    match cli.command {
        Command::Init => init(&ctx),
        Command::Run(args) => run::run(ctx, args),
        Command::Start(args) => {
            run::effective_config(&ctx, &args)?; // a bad flag or config fails here, not later
            service::start(&ctx, std::env::args_os().collect())
        }
        Command::Stop => service::stop(&ctx),
        Command::Log(args) => service::log(&ctx, args),
        Command::Explorer(args) => explorer::run(&ctx, args),
        Command::Task(cmd) => task::run(&ctx, cmd),
        Command::Tasks => task::run(&ctx, task::TaskCommand::List),
        Command::Status(args) => inspect::status(&ctx, args),
        Command::Frontier(args) => inspect::frontier(&ctx, args),
        Command::Graph(args) => inspect::graph(&ctx, args),
        Command::Profile(cmd) => profile::run(&ctx, cmd),
        Command::Set(args) => llm::set(&ctx, args),
        Command::Info => inspect::info(&ctx),
        Command::Version => {
            if ctx.json {
                crate::output::print_json(&spore_spec::json::object([
                    ("version", Value::Str(env!("CARGO_PKG_VERSION").into())),
                    ("protocol", Value::Str("0.6".into())),
                ]));
            } else {
                println!(
                    "spored {} (Spore Mesh protocol 0.6)",
                    env!("CARGO_PKG_VERSION")
                );
            }
            Ok(())
        }
        Command::Verify(args) => verify::run(&ctx, args),
        Command::Export(args) => transfer::export(&ctx, args),
        Command::Import(args) => transfer::import(&ctx, args),
        Command::Prepare(args) => prepare::run(&ctx, args),
        Command::Warmup(args) => warmup::run(&ctx, args),
        Command::Train(_) | Command::Release(_) | Command::Completions { .. } | Command::Man => {
            unreachable!("handled before the context is built")
        }
    }
}

fn init(ctx: &Context) -> Result<()> {
    let (identity, created) = ctx.data_dir.ensure_identity()?;
    if !ctx.config_path.exists() {
        let mut config = ctx.config.clone();
        config.data_dir = ctx.data_dir.root.display().to_string();
        config.save(&ctx.config_path)?;
    }
    ctx.data_dir.open_store()?;
    let node_id = identity.node_id();
    if ctx.json {
        crate::output::print_json(&spore_spec::json::object([
            ("node_id", Value::Str(node_id)),
            ("created", Value::Bool(created)),
            (
                "data_dir",
                Value::Str(ctx.data_dir.root.display().to_string()),
            ),
        ]));
        return Ok(());
    }
    if created {
        println!("Node initialized. ID: {}...", &node_id[..16]);
    }
    println!("Node ready. ID: {}...", &node_id[..16]);
    println!("Data dir: {}", ctx.data_dir.root.display());
    Ok(())
}
