//! `spored start`, `stop` and `log`: the node as a background service of one data dir. `start`
//! runs `spored run` with the same flags in its own session, its stdout and stderr appended to
//! `<data dir>/spored.log` and its pid in `<data dir>/spored.pid`; `stop` sends SIGTERM and waits
//! for the clean stop; `log` prints (or follows) the log. `spored info` asks the running node
//! itself.

use std::io::{BufRead as _, Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use spore_spec::json::{object, Value};

use super::Context;

/// How long `start` waits for the node to serve, and `stop` for it to exit.
const START_WAIT: Duration = Duration::from_secs(60);
const STOP_WAIT: Duration = Duration::from_secs(60);

fn pid_file(ctx: &Context) -> PathBuf {
    ctx.data_dir.root.join("spored.pid")
}

pub fn log_file(ctx: &Context) -> PathBuf {
    ctx.data_dir.root.join("spored.log")
}

/// The pid in the pid file, when that process is alive.
fn running_pid(ctx: &Context) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(ctx))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // signal 0: does the process exist (and may we signal it)?
    (pid > 0 && unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

/// `spored start [run flags]`: `args` are this process's own arguments.
pub fn start(ctx: &Context, args: Vec<std::ffi::OsString>) -> Result<()> {
    if let Some(pid) = running_pid(ctx) {
        bail!(
            "a node is already running for {} (pid {pid}); `spored stop` stops it",
            ctx.data_dir.root.display()
        );
    }
    if ctx.data_dir.socket().exists()
        && crate::control::request(&ctx.data_dir.socket(), "info", &[]).is_ok()
    {
        bail!(
            "a node is already running for {} (started outside `spored start`)",
            ctx.data_dir.root.display()
        );
    }
    std::fs::create_dir_all(&ctx.data_dir.root)?;
    // the same command line with `run` in the place of `start`
    let mut run_args = args;
    let at = run_args
        .iter()
        .position(|a| a == "start")
        .context("no `start` in the command line")?;
    run_args[at] = "run".into();
    let log_path = log_file(ctx);
    // a log already past its limit is rotated now, not by the node a few seconds into its start
    // (this command reads the new node's first lines from where the file ends now)
    if std::fs::metadata(&log_path)
        .is_ok_and(|m| m.len() > ctx.config.log_max_mb.saturating_mul(1 << 20))
    {
        crate::logs::shift(&log_path)
            .with_context(|| format!("rotating {}", log_path.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let log_start = log.metadata()?.len();
    let program = std::env::current_exe().context("cannot find the spored executable")?;
    let mut command = std::process::Command::new(program);
    command
        .args(&run_args[1..])
        .stdin(std::process::Stdio::null())
        .env("SPORED_LOG_FILE", &log_path)
        .stdout(log.try_clone()?)
        .stderr(log);
    // its own session: it outlives this terminal and its signals
    unsafe {
        use std::os::unix::process::CommandExt as _;
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().context("starting the node")?;
    let pid = child.id();
    crate::data_dir::write_atomically(&pid_file(ctx), format!("{pid}\n").as_bytes(), 0o644)?;
    // wait until it serves (the explorer line), or say why it did not start
    let deadline = Instant::now() + START_WAIT;
    loop {
        let printed = read_from(&log_path, log_start).unwrap_or_default();
        if let Some(line) = printed.lines().find(|l| l.starts_with("explorer on ")) {
            if ctx.json {
                crate::output::print_json(&object([
                    ("pid", Value::Int(i64::from(pid))),
                    ("explorer", Value::Str(line["explorer on ".len()..].into())),
                    ("log", Value::Str(log_path.display().to_string())),
                ]));
            } else {
                spore_actors::say!(
                    "{}",
                    format!("started pid {pid}; {line}; log {}", log_path.display()),
                );
            }
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let _ = std::fs::remove_file(pid_file(ctx));
            let tail: Vec<&str> = printed.lines().rev().take(10).collect();
            bail!(
                "the node exited during start ({status}):\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the node (pid {pid}) did not start serving within {} s; see {}",
                START_WAIT.as_secs(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_from(path: &Path, offset: u64) -> Result<String> {
    let mut f = std::fs::File::open(path)?;
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text)
}

/// `spored stop`: SIGTERM, then wait for the clean stop.
pub fn stop(ctx: &Context) -> Result<()> {
    let Some(pid) = running_pid(ctx) else {
        let _ = std::fs::remove_file(pid_file(ctx));
        bail!(
            "no node started by `spored start` is running for {}",
            ctx.data_dir.root.display()
        );
    };
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let started = Instant::now();
    while started.elapsed() < STOP_WAIT {
        if unsafe { libc::kill(pid, 0) } != 0 {
            let _ = std::fs::remove_file(pid_file(ctx));
            let seconds = started.elapsed().as_secs_f64();
            if ctx.json {
                crate::output::print_json(&object([
                    ("pid", Value::Int(i64::from(pid))),
                    ("seconds", Value::Float(seconds)),
                ]));
            } else {
                spore_actors::say!("{}", format!("stopped pid {pid} in {seconds:.1} s"));
            }
            return Ok(());
        }
        // reap it if it is our child (it is not: `start` ran in another process); poll instead
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "pid {pid} is still running {} s after SIGTERM (a training step or the store may be busy); \
         `kill -KILL {pid}` ends it, and the store keeps everything committed",
        STOP_WAIT.as_secs()
    )
}

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// Keep printing what the node writes
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines from the end to start with
    #[arg(short = 'n', long, default_value_t = 50)]
    pub lines: usize,
}

/// `spored log [-f] [-n N]`.
pub fn log(ctx: &Context, args: LogArgs) -> Result<()> {
    let path = log_file(ctx);
    let mut file = std::fs::File::open(&path)
        .with_context(|| format!("no log at {} (`spored start` writes it)", path.display()))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(args.lines)..] {
        spore_actors::say!("{line}");
    }
    if !args.follow {
        return Ok(());
    }
    let mut position = file.stream_position()?;
    let mut reader = std::io::BufReader::new(file);
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            // rotated (`crate::logs`): what the old file got meanwhile is read to its end, then
            // the new one is followed
            if crate::logs::replaced(&path, reader.get_ref(), position) {
                if let Ok(fresh) = std::fs::File::open(&path) {
                    let mut rest = Vec::new();
                    reader.read_to_end(&mut rest)?;
                    for line in String::from_utf8_lossy(&rest).lines() {
                        spore_actors::say!("{line}");
                    }
                    reader = std::io::BufReader::new(fresh);
                    position = 0;
                    continue;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        position += n as u64;
        let text = String::from_utf8_lossy(&line);
        spore_actors::say!("{}", text.trim_end_matches('\n'));
    }
}
