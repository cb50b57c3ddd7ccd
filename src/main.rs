//! `spored`: a Spore Mesh node and its command line.

mod cli;
mod config;
mod control;
mod data_dir;
mod logs;
mod output;
mod query;
mod systemd;

use std::process::ExitCode;

use clap::Parser as _;

/// glibc gives each thread that allocates its own malloc arena (up to 8 per core), and a node's
/// blocking threads (store reads, checking) each keep freed memory in theirs: a relay serving
/// 100k records peaked at 120-146 MiB with the default and 82-88 MiB with two arenas (sync bench,
/// docs/benchmarks.md), at no cost in speed.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called first thing in main, before
    // any other thread exists. A zero return (not applied) is harmless.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The GPU backend (cubecl) autotunes every kernel shape on first use. At its default level a
/// ~50M-parameter model spent over 5 minutes in its first step on an H100 (docs/benchmarks.md),
/// longer than an experiment's budget; `minimal` tries fewer candidates. An operator's
/// `CUBECL_AUTOTUNE_LEVEL` wins. Set first thing in main, before any other thread exists; a
/// training child inherits it.
fn default_autotune_level() {
    if std::env::var_os("CUBECL_AUTOTUNE_LEVEL").is_none() {
        std::env::set_var("CUBECL_AUTOTUNE_LEVEL", "minimal");
    }
}

/// Replaces the log filter of the running process (`log_level` on SIGHUP).
type SetFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
pub static LOG_FILTER: std::sync::OnceLock<SetFilter> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    limit_malloc_arenas();
    default_autotune_level();
    let cli = cli::Cli::parse();
    // A running node says what it does; one-shot commands stay quiet. RUST_LOG overrides both.
    let default_filter = match cli.command {
        cli::Command::Run(_) => "warn,spored=info,spore_actors=info,libp2p_kad=error",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // `log_format = "json"` (or `run --json`): one JSON object per line for log collectors
    let json_logs = matches!(cli.command, cli::Command::Run(_))
        && (cli.json || cli::configured_log_format(&cli) == config::LogFormat::Json);
    // colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::registry()
        .with(filter)
        .with(json_logs.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(spore_actors::console::LogWriter)
        }))
        .with((!json_logs).then(|| {
            tracing_subscriber::fmt::layer()
                .with_writer(spore_actors::console::LogWriter)
                .with_ansi(colour)
        }))
        .init();
    let _ = LOG_FILTER.set(Box::new(move |directives: &str| {
        let filter = tracing_subscriber::EnvFilter::try_new(directives)
            .map_err(|e| format!("invalid log_level {directives:?}: {e}"))?;
        handle.reload(filter).map_err(|e| e.to_string())
    }));
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<cli::Busy>().is_some() {
                ExitCode::from(cli::Busy::EXIT_CODE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
