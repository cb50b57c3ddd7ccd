//! ExperimentRunner: experiments in child processes (`spored train`), one per slot at a time: a
//! slot is a GPU (each child pinned to its own), or the CPU when the node has no GPU.
//!
//! The runner writes the config artifact to a file, starts the child on a free slot with a
//! thread budget from `resource`, reads its stage and progress lines and its summary, measures
//! the child's peak memory, and kills it when it runs past budget + grace. Whatever happens, the
//! caller gets a [`RunResult`]: a crash, an OOM kill or a hang becomes `success = false` with the
//! reason in `error`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use spore_train::report::{self, Event, Parsed};
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
    /// `auto`, `cpu` or `cuda`: what [`slots`] made the slots of (each child runs on its slot's
    /// device).
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
    /// Where experiments run, one at a time on each ([`slots`]); empty: the CPU.
    pub slots: Vec<Slot>,
}

impl RunnerConfig {
    /// Threads each child may use: this node's share of the cores, split between its slots.
    pub fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slots = self.slots.len().max(1);
        (cores * self.resource as usize)
            .div_ceil(100 * slots)
            .max(1)
    }

    /// The slots experiments run on (the CPU when none are configured).
    pub fn slots(&self) -> Vec<Slot> {
        match self.slots.is_empty() {
            true => vec![Slot::Cpu],
            false => self.slots.clone(),
        }
    }
}

/// Where one experiment runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// The CPU (a node without a usable GPU): one experiment at a time.
    Cpu,
    /// One GPU, by `nvidia-smi` index: its child sees that GPU alone.
    Gpu(u32),
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Cpu => f.write_str("cpu"),
            Slot::Gpu(i) => write!(f, "gpu {i}"),
        }
    }
}

/// The slots of a node whose children run on `device` (`auto`, `cpu`, `cuda`), from the GPUs
/// it can see (`CUDA_VISIBLE_DEVICES` already applied, see `spore_train::child::visible_gpus`):
/// one per GPU of the first GPU's model, so every record this node makes is of one hardware
/// class (its verifier's tolerance and its reruns' class are that one). Other models are left
/// out; the second element says which, for the log. No GPU, or `cpu`: the CPU alone.
pub fn slots(
    device: &str,
    gpus: &[spore_train::child::Gpu],
) -> (Vec<Slot>, Vec<spore_train::child::Gpu>) {
    let Some(first) = gpus.first().filter(|_| device != "cpu") else {
        return (vec![Slot::Cpu], Vec::new());
    };
    let (same, other): (Vec<_>, Vec<_>) = gpus.iter().cloned().partition(|g| g.name == first.name);
    (same.iter().map(|g| Slot::Gpu(g.index)).collect(), other)
}

/// Free slots, handed out one per run: a run waits for one (first come, first served) and gives
/// it back when it ends, however it ends.
#[derive(Debug)]
pub struct SlotPool {
    free: std::sync::Mutex<Vec<Slot>>,
    permits: Arc<tokio::sync::Semaphore>,
    len: usize,
}

/// A slot held by one run; dropping it frees the slot.
#[derive(Debug)]
pub struct SlotGuard {
    pool: Arc<SlotPool>,
    slot: Slot,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl SlotPool {
    pub fn new(slots: Vec<Slot>) -> Arc<SlotPool> {
        let len = slots.len();
        Arc::new(SlotPool {
            free: std::sync::Mutex::new(slots),
            permits: Arc::new(tokio::sync::Semaphore::new(len)),
            len,
        })
    }

    /// How many runs can go at once.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waits for a free slot (the lowest-numbered one free).
    pub async fn take(self: &Arc<SlotPool>) -> SlotGuard {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // a permit is held, so a slot is free: the permits count the free slots
        free.sort_unstable_by(|a, b| b.cmp(a));
        let slot = free.pop().expect("a permit stands for a free slot");
        SlotGuard {
            pool: self.clone(),
            slot,
            _permit: permit,
        }
    }
}

impl SlotGuard {
    pub fn slot(&self) -> Slot {
        self.slot
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        // the slot goes back before the permit (dropped after this): the next taker finds it
        self.pool
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.slot);
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

    /// Runs `req` on the first slot, to the end (or the kill); `on_event` sees each stage and
    /// progress line.
    pub async fn run(&self, req: &RunRequest, on_event: impl FnMut(&Event)) -> RunResult {
        let slot = self.config.slots()[0];
        self.run_on(slot, req, on_event).await
    }

    /// Runs `req` on `slot` (which the caller holds).
    pub async fn run_on(
        &self,
        slot: Slot,
        req: &RunRequest,
        mut on_event: impl FnMut(&Event),
    ) -> RunResult {
        let started = Instant::now();
        let mut result = match self.run_inner(slot, req, &mut on_event).await {
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
        slot: Slot,
        req: &RunRequest,
        on_event: &mut impl FnMut(&Event),
    ) -> Result<RunResult, String> {
        let c = &self.config;
        std::fs::create_dir_all(&c.work_dir)
            .map_err(|e| format!("cannot create {}: {e}", c.work_dir.display()))?;
        // one file per slot: runs on different slots go at the same time
        let name = match slot {
            Slot::Cpu => format!("run-{}.toml", std::process::id()),
            Slot::Gpu(i) => format!("run-{}-gpu{i}.toml", std::process::id()),
        };
        let config_path = c.work_dir.join(name);
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
            .arg(match slot {
                Slot::Cpu => "cpu",
                Slot::Gpu(_) => "cuda",
            })
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
        if let Slot::Gpu(i) = slot {
            // The child sees its GPU alone and names it for the record. CUDA numbers GPUs
            // fastest first unless told otherwise; `nvidia-smi`'s index is the PCI order.
            cmd.arg("--gpu")
                .arg(i.to_string())
                .env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
                .env("CUDA_VISIBLE_DEVICES", i.to_string());
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
                if let Some(event) = report::parse_event(&line) {
                    on_event(&event);
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

/// A progress display: a bar on a terminal, a plain line every 10 s otherwise (and always when
/// several runs share the terminal: one bar cannot show them).
pub struct ProgressView {
    tty: bool,
    last: Option<Instant>,
}

impl ProgressView {
    pub fn new() -> ProgressView {
        ProgressView::shared(false)
    }

    /// A display for one of several runs at once (`shared`): plain lines only.
    pub fn shared(shared: bool) -> ProgressView {
        ProgressView {
            tty: !shared && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            last: None,
        }
    }

    pub fn show_event(&mut self, label: &str, event: &Event) {
        match event {
            Event::Progress(p) => self.show(label, p),
            Event::Stage(s) => self.show_stage(label, s),
        }
    }

    /// A stage of the run's start (the child tells each once; on a GPU one can take minutes).
    pub fn show_stage(&mut self, label: &str, s: &report::StageLine) {
        if self.tty {
            crate::note!("\r\x1b[2K{label}: {}", s.describe());
            crate::console::bar_shown(true);
        } else if s.gpu {
            crate::note!("{label}: {}\n", s.describe());
        }
    }

    pub fn show(&mut self, label: &str, p: &report::ProgressLine) {
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

/// The actor: runs experiments on its slots, one at a time on each.
pub struct ExperimentRunner {
    runner: Runner,
    /// Where the runs training now are told (the explorer's header).
    metrics: crate::metrics::Metrics,
    slots: Arc<SlotPool>,
    /// Sandboxed runs go one at a time whatever the slots: they run on the CPU (a sandbox has
    /// no GPU), so N GPUs must not mean N of them.
    sandboxed: Arc<tokio::sync::Mutex<()>>,
    /// bubblewrap, checked on the first sandboxed run (`Err`: why peer code is not run here).
    sandbox: Option<Result<Sandbox, String>>,
}

impl ExperimentRunner {
    pub fn new(config: RunnerConfig) -> ExperimentRunner {
        ExperimentRunner {
            slots: SlotPool::new(config.slots()),
            runner: Runner::new(config),
            metrics: crate::metrics::Metrics::default(),
            sandboxed: Arc::default(),
            sandbox: None,
        }
    }

    /// Tells `metrics` what trains now.
    pub fn reporting_to(mut self, metrics: crate::metrics::Metrics) -> ExperimentRunner {
        self.metrics = metrics;
        self
    }
}

impl Actor for ExperimentRunner {
    type Context = Context<Self>;
}

/// Run one experiment on the next free slot (waiting for one).
#[derive(Message)]
#[rtype(result = "RunResult")]
pub struct RunExperiment(pub RunRequest);

impl Handler<RunExperiment> for ExperimentRunner {
    type Result = ResponseFuture<RunResult>;

    fn handle(&mut self, msg: RunExperiment, _: &mut Context<Self>) -> Self::Result {
        let runner = self.runner.clone();
        let slots = self.slots.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let held = slots.take().await;
            let slot = held.slot();
            let device = slot.to_string();
            let shared = slots.len() > 1;
            let mut view = ProgressView::shared(shared);
            let show = runner.config().show_progress;
            let label = msg.0.label.clone();
            // the terminal names the GPU when several share it
            let shown = match shared {
                true => format!("{slot}: {label}"),
                false => label.clone(),
            };
            let result = runner
                .run_on(slot, &msg.0, |event| {
                    metrics.set_training(&device, Some(training(&label, &device, event)));
                    // the log says each stage too: on a GPU one can take minutes
                    if let Event::Stage(s @ report::StageLine { gpu: true, .. }) = event {
                        tracing::info!(%slot, stage = s.stage, of = s.of, "{}", s.describe());
                    }
                    if show {
                        view.show_event(&shown, event)
                    }
                })
                .await;
            metrics.set_training(&device, None);
            if show {
                view.finish();
            }
            drop(held);
            result
        })
    }
}

/// What the explorer's header shows of a run on `device`, from its last line.
fn training(label: &str, device: &str, event: &Event) -> crate::metrics::Training {
    let (progress, preparing) = match event {
        Event::Progress(p) => (p.clone(), None),
        Event::Stage(s) => (
            report::ProgressLine {
                step: 0,
                planned: 0,
                loss: f64::NAN,
                tokens_per_s: 0.0,
                elapsed: 0.0,
                budget: s.budget,
            },
            Some(s.clone()),
        ),
    };
    crate::metrics::Training {
        label: label.to_string(),
        device: device.to_string(),
        progress,
        preparing,
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
        let slots = self.slots.clone();
        let one = self.sandboxed.clone();
        let show = self.runner.config().show_progress;
        Box::pin(async move {
            let sandbox = sandbox?;
            let _one = one.lock().await;
            // and a slot like any run: the machine's share for experiments is the same
            let _slot = slots.take().await;
            if show {
                crate::note!("{}: running in the sandbox\n", msg.label);
            }
            actix_rt::task::spawn_blocking(move || sandbox.run(&msg.job))
                .await
                .map_err(|e| format!("the sandboxed run was lost: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spore_train::child::parse_gpus;

    const SMI: &str = "0, GPU-a, NVIDIA H100 80GB HBM3\n1, GPU-b, NVIDIA H100 80GB HBM3\n\
                       2, GPU-c, NVIDIA A100-SXM4-40GB\n3, GPU-d, NVIDIA H100 80GB HBM3\n";

    #[test]
    fn a_node_gets_one_slot_per_gpu_of_one_model() {
        let all = parse_gpus(SMI);
        let (chosen, left_out) = slots("auto", &all);
        assert_eq!(chosen, [Slot::Gpu(0), Slot::Gpu(1), Slot::Gpu(3)]);
        assert_eq!(left_out.len(), 1);
        assert_eq!(left_out[0].index, 2);
        // CUDA_VISIBLE_DEVICES=2,0 puts the A100 first: the A100 alone
        let visible = spore_train::child::visible_gpus(&all, Some("2,0"));
        assert_eq!(slots_of(&visible), [Slot::Gpu(2)]);
        // no GPU, or `--device cpu`: the CPU
        assert_eq!(slots_of(&[]), [Slot::Cpu]);
        assert_eq!(slots("cpu", &all).0, [Slot::Cpu]);
    }

    fn slots_of(gpus: &[spore_train::child::Gpu]) -> Vec<Slot> {
        slots("auto", gpus).0
    }

    #[test]
    fn each_slot_gets_its_share_of_the_threads() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut config = RunnerConfig {
            program: "/bin/false".into(),
            work_dir: "/nonexistent".into(),
            resource: 100,
            memory_limit_mb: 1,
            device: "auto".into(),
            eval_tokens: None,
            show_progress: false,
            grace: None,
            kernel_cache: None,
            slots: Vec::new(),
        };
        assert_eq!(config.slots(), [Slot::Cpu]);
        assert_eq!(config.threads(), cores);
        config.slots = (0..cores as u32 * 2).map(Slot::Gpu).collect();
        // never zero, however many GPUs share the cores
        assert_eq!(config.threads(), 1);
        config.slots = vec![Slot::Gpu(0), Slot::Gpu(1)];
        assert_eq!(config.threads(), cores.div_ceil(2));
    }

    #[actix_rt::test]
    async fn slots_are_handed_out_once_and_waited_for_in_turn() {
        let pool = SlotPool::new(vec![Slot::Gpu(1), Slot::Gpu(0)]);
        let a = pool.take().await;
        let b = pool.take().await;
        // the lowest free slot first, each once
        assert_eq!((a.slot(), b.slot()), (Slot::Gpu(0), Slot::Gpu(1)));
        // a third run waits for a slot...
        let third = pool.take();
        tokio::pin!(third);
        let waited = tokio::time::timeout(Duration::from_millis(50), &mut third).await;
        assert!(waited.is_err(), "a third run started with two slots busy");
        // ...and gets the one given back
        drop(b);
        let c = tokio::time::timeout(Duration::from_secs(5), &mut third)
            .await
            .expect("the freed slot is handed on");
        assert_eq!(c.slot(), Slot::Gpu(1));
        // a run given up while waiting (the node stopping) takes no slot with it
        let given_up = tokio::time::timeout(Duration::from_millis(20), pool.take()).await;
        assert!(given_up.is_err());
        drop((a, c));
        let (x, y) = (pool.take().await, pool.take().await);
        assert_eq!((x.slot(), y.slot()), (Slot::Gpu(0), Slot::Gpu(1)));
    }
}
