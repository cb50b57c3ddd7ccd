//! ExperimentRunner: one experiment at a time, each in its own child process (`spored train`).
//!
//! The runner writes the config artifact to a file, starts the child with a thread budget from
//! `resource`, reads its progress lines and its summary, measures the child's peak memory, and
//! kills it when it runs past budget + grace. Whatever happens, the caller gets a [`RunResult`]:
//! a crash, an OOM kill or a hang becomes `success = false` with the reason in `error`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use spore_train::report::{self, Parsed, ProgressLine};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::sandbox::{self, Sandbox};

/// How to start training children.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// The spored executable (its `train` subcommand runs one experiment).
    pub program: PathBuf,
    /// Where config files for children are written.
    pub work_dir: PathBuf,
    /// Share of the machine (percent): threads = ceil(cores × resource / 100), and at most that
    /// share of a micro-batch in one forward pass (`spored train --resource`).
    pub resource: u8,
    /// Configs estimated to need more training memory than this are refused (MiB).
    pub memory_limit_mb: u64,
    /// `auto`, `cpu` or `cuda`.
    pub device: String,
    /// Validation tokens (None: the default task's).
    pub eval_tokens: Option<usize>,
    /// Show progress on the terminal.
    pub show_progress: bool,
    /// Time after the budget before the child is killed (None: [`grace`]'s rule).
    pub grace: Option<Duration>,
    /// Where GPU children keep compiled kernels and autotune results (`spored train
    /// --kernel-cache`); None: the GPU backend's default.
    pub kernel_cache: Option<PathBuf>,
}

impl RunnerConfig {
    pub fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores * self.resource as usize).div_ceil(100).max(1)
    }
}

/// One experiment to run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    pub config_bytes: Vec<u8>,
    pub budget: Duration,
    /// Exact optimiser steps (verification reruns).
    pub steps: Option<u64>,
    /// What the terminal shows while it runs.
    pub label: String,
    /// The corpus file (None: the built-in one).
    pub corpus: Option<PathBuf>,
    /// The preparation document (None: byte-level tokens).
    pub prepare: Option<PathBuf>,
}

/// What came of one run.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    pub parsed: Parsed,
    pub success: bool,
    /// The child was stopped from outside (see [`stopped_by_signal`]): not a result of the
    /// experiment, so neither a record nor a verdict may be made of it.
    pub interrupted: bool,
    /// Why it failed, in this node's words (empty on success). Never text the child printed:
    /// it goes into the record's description, which this node signs.
    pub error: String,
    /// The child's own last error line, if it failed: for local eyes only (the log, the
    /// console), never signed.
    pub detail: String,
    /// Everything the child printed on stdout.
    pub output: String,
    /// The child's peak resident memory (MiB), measured from outside.
    pub peak_rss_mb: f64,
    pub wall: Duration,
}

impl RunResult {
    /// Why it failed with the child's own last error line: for logs and the console.
    pub fn failure_text(&self) -> String {
        match self.detail.is_empty() {
            true => self.error.clone(),
            false => format!("{}: {}", self.error, self.detail),
        }
    }
}

/// Extra time after the budget before the child is killed: start-up, the first step (kernel
/// compilation and autotuning on a GPU can take minutes), evaluation. The reference allows 300 s.
pub fn grace(budget: Duration) -> Duration {
    Duration::from_secs(300).max(budget)
}

/// Runs experiments as child processes.
#[derive(Clone, Debug)]
pub struct Runner {
    config: RunnerConfig,
}

impl Runner {
    pub fn new(config: RunnerConfig) -> Runner {
        Runner { config }
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Runs `req` to the end (or the kill); `on_progress` sees each progress line.
    pub async fn run(
        &self,
        req: &RunRequest,
        mut on_progress: impl FnMut(&ProgressLine),
    ) -> RunResult {
        let started = Instant::now();
        let mut result = match self.run_inner(req, &mut on_progress).await {
            Ok(r) => r,
            Err(error) => RunResult {
                error,
                ..RunResult::default()
            },
        };
        result.wall = started.elapsed();
        result
    }

    async fn run_inner(
        &self,
        req: &RunRequest,
        on_progress: &mut impl FnMut(&ProgressLine),
    ) -> Result<RunResult, String> {
        let c = &self.config;
        std::fs::create_dir_all(&c.work_dir)
            .map_err(|e| format!("cannot create {}: {e}", c.work_dir.display()))?;
        let config_path = c.work_dir.join(format!("run-{}.toml", std::process::id()));
        std::fs::write(&config_path, &req.config_bytes)
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        let mut cmd = Command::new(&c.program);
        cmd.arg("train")
            .arg("--config")
            .arg(&config_path)
            .arg("--budget")
            .arg(format!("{:.3}", req.budget.as_secs_f64()))
            .arg("--memory-limit-mb")
            .arg(c.memory_limit_mb.to_string())
            .arg("--device")
            .arg(&c.device)
            .arg("--resource")
            .arg(c.resource.clamp(1, 100).to_string())
            .env("RAYON_NUM_THREADS", c.threads().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: a stop signal sent to the node's group (a terminal's
            // Ctrl-C, `timeout`, a shell's job control) reaches only the node, which then drops
            // this run (killing the child) before anything could read its result.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            // the child dies with the node, even when the node is killed (SIGKILL, a crash)
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        if let Some(steps) = req.steps {
            cmd.arg("--steps").arg(steps.to_string());
        }
        if let Some(dir) = &c.kernel_cache {
            cmd.arg("--kernel-cache").arg(dir);
        }
        if let Some(corpus) = &req.corpus {
            cmd.arg("--corpus").arg(corpus);
        }
        if let Some(prepare) = &req.prepare {
            cmd.arg("--prepare").arg(prepare);
        }
        if let Some(tokens) = c.eval_tokens {
            cmd.arg("--eval-tokens").arg(tokens.to_string());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", c.program.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let stderr = child.stderr.take().ok_or("child has no stderr")?;
        let stderr_task = actix_rt::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut tail: Vec<String> = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if !line.trim().is_empty() {
                    tail.push(line);
                    if tail.len() > 20 {
                        tail.remove(0);
                    }
                }
            }
            tail
        });
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let watcher = pid.map(|pid| {
            let peak = peak.clone();
            actix_rt::spawn(async move {
                loop {
                    if let Some(kb) = spore_train::child::peak_rss_kib(&pid.to_string()) {
                        peak.fetch_max(kb, std::sync::atomic::Ordering::Relaxed);
                    }
                    actix_rt::time::sleep(Duration::from_millis(250)).await;
                }
            })
        });

        let deadline = req.budget + c.grace.unwrap_or_else(|| grace(req.budget));
        let mut output = String::new();
        let mut lines = BufReader::new(stdout).lines();
        let read_all = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(p) = report::parse_progress(&line) {
                    on_progress(&p);
                }
                output.push_str(&line);
                output.push('\n');
            }
            child.wait().await
        };
        let waited = actix_rt::time::timeout(deadline, read_all).await;
        if let Some(w) = watcher {
            w.abort();
        }
        let (status, killed) = match waited {
            Ok(Ok(status)) => (Some(status), false),
            Ok(Err(e)) => return Err(format!("waiting for the training child failed: {e}")),
            Err(_) => {
                let _ = child.kill().await;
                (None, true)
            }
        };
        let tail = stderr_task.await.unwrap_or_default();
        let parsed = report::parse_output(&output);
        let exit_ok = status.is_some_and(|s| s.success());
        let success = parsed.success(exit_ok);
        let interrupted = !success && status.is_some_and(stopped_by_signal);
        let (error, detail) = if success {
            (String::new(), String::new())
        } else if killed {
            let why = format!(
                "killed: ran past the time budget + grace ({:.0} s)",
                deadline.as_secs_f64()
            );
            (why, String::new())
        } else {
            failure_reason(status, &tail)
        };
        let measured = peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;
        let _ = std::fs::remove_file(&config_path);
        Ok(RunResult {
            peak_rss_mb: measured.max(parsed.peak_vram_mb),
            parsed,
            success,
            interrupted,
            error,
            detail,
            output,
            wall: Duration::ZERO,
        })
    }
}

/// Whether the child ended by a signal that asks a process to stop (a service manager's stop
/// reaches every process of its cgroup; a user may stop the child by hand). That is not a
/// failure of the experiment, and nothing is published about it. SIGKILL stays a failure: the
/// kernel's out-of-memory killer sends it.
fn stopped_by_signal(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(
        status.signal(),
        Some(libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGQUIT)
    )
}

/// The reason a child failed, in this node's words (how it died or exited), and the child's
/// own last error line (local only).
fn failure_reason(
    status: Option<std::process::ExitStatus>,
    stderr_tail: &[String],
) -> (String, String) {
    use std::os::unix::process::ExitStatusExt;
    let detail: String = stderr_tail
        .iter()
        .rev()
        .find(|l| l.starts_with("error") || l.contains("panicked"))
        .or(stderr_tail.last())
        .map(|l| {
            l.trim()
                .trim_start_matches("error: ")
                .chars()
                .take(300)
                .collect()
        })
        .unwrap_or_default();
    let why = match status {
        Some(s) if s.signal() == Some(9) => {
            "killed by SIGKILL (out of memory, or stopped from outside)".into()
        }
        Some(s) if s.signal().is_some() => format!("killed by signal {}", s.signal().unwrap_or(0)),
        Some(s) if detail.is_empty() => format!("training exited with {s} and printed no metrics"),
        Some(s) => format!("training failed ({s})"),
        None => "training child vanished".into(),
    };
    (why, detail)
}

/// A progress display: a bar on a terminal, a plain line every 10 s otherwise.
pub struct ProgressView {
    tty: bool,
    last: Option<Instant>,
}

impl ProgressView {
    pub fn new() -> ProgressView {
        ProgressView {
            tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            last: None,
        }
    }

    pub fn show(&mut self, label: &str, p: &ProgressLine) {
        let left = (p.budget - p.elapsed).max(0.0);
        let fraction = if p.planned > 0 {
            p.step as f64 / p.planned as f64
        } else {
            p.elapsed / p.budget.max(1e-9)
        }
        .clamp(0.0, 1.0);
        let text = format!(
            "step {}{} loss {:.3} {:.1}k tok/s {:.0}s left",
            p.step,
            if p.planned > 0 {
                format!("/{}", p.planned)
            } else {
                String::new()
            },
            p.loss,
            p.tokens_per_s / 1000.0,
            left
        );
        if self.tty {
            let filled = (fraction * 24.0).round() as usize;
            let bar: String = "#".repeat(filled) + &".".repeat(24 - filled);
            crate::note!("\r\x1b[2K{label} [{bar}] {text}");
            crate::console::bar_shown(true);
        } else if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.last = Some(Instant::now());
            crate::note!("{label}: {text}\n");
        }
    }

    /// Ends the bar's line.
    pub fn finish(&mut self) {
        if self.tty {
            crate::console::bar_shown(false);
            crate::note!("\r\x1b[2K");
        }
        self.last = None;
    }
}

impl Default for ProgressView {
    fn default() -> Self {
        Self::new()
    }
}

/// The actor: serialises runs (one experiment at a time on this node).
pub struct ExperimentRunner {
    runner: Runner,
    /// Where the run training now is told (the explorer's header).
    metrics: crate::metrics::Metrics,
    lock: Arc<tokio::sync::Mutex<()>>,
    /// bubblewrap, checked on the first sandboxed run (`Err`: why peer code is not run here).
    sandbox: Option<Result<Sandbox, String>>,
}

impl ExperimentRunner {
    pub fn new(config: RunnerConfig) -> ExperimentRunner {
        ExperimentRunner {
            runner: Runner::new(config),
            metrics: crate::metrics::Metrics::default(),
            lock: Arc::new(tokio::sync::Mutex::new(())),
            sandbox: None,
        }
    }
}

impl ExperimentRunner {
    /// Tells `metrics` what trains now.
    pub fn reporting_to(mut self, metrics: crate::metrics::Metrics) -> ExperimentRunner {
        self.metrics = metrics;
        self
    }
}

impl Actor for ExperimentRunner {
    type Context = Context<Self>;
}

/// Run one experiment; waits for any run in progress to finish first.
#[derive(Message)]
#[rtype(result = "RunResult")]
pub struct RunExperiment(pub RunRequest);

impl Handler<RunExperiment> for ExperimentRunner {
    type Result = ResponseFuture<RunResult>;

    fn handle(&mut self, msg: RunExperiment, _: &mut Context<Self>) -> Self::Result {
        let runner = self.runner.clone();
        let lock = self.lock.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let _guard = lock.lock().await;
            let mut view = ProgressView::new();
            let show = runner.config().show_progress;
            let label = msg.0.label.clone();
            let result = runner
                .run(&msg.0, |p| {
                    metrics.set_training(Some(crate::metrics::Training {
                        label: label.clone(),
                        progress: p.clone(),
                    }));
                    if show {
                        view.show(&label, p)
                    }
                })
                .await;
            metrics.set_training(None);
            if show {
                view.finish();
            }
            result
        })
    }
}

/// Run code from a peer or an LLM in the sandbox, one run at a time with the training runs.
/// `Err`: this node has no working sandbox (the reason), and nothing was run.
#[derive(Message)]
#[rtype(result = "Result<sandbox::Outcome, String>")]
pub struct RunSandboxed {
    pub job: sandbox::Job,
    pub label: String,
}

impl Handler<RunSandboxed> for ExperimentRunner {
    type Result = ResponseFuture<Result<sandbox::Outcome, String>>;

    fn handle(&mut self, msg: RunSandboxed, _: &mut Context<Self>) -> Self::Result {
        let sandbox = self.sandbox.get_or_insert_with(Sandbox::detect).clone();
        let lock = self.lock.clone();
        let show = self.runner.config().show_progress;
        Box::pin(async move {
            let sandbox = sandbox?;
            let _guard = lock.lock().await;
            if show {
                crate::note!("{}: running in the sandbox\n", msg.label);
            }
            actix_rt::task::spawn_blocking(move || sandbox.run(&msg.job))
                .await
                .map_err(|e| format!("the sandboxed run was lost: {e}"))
        })
    }
}
