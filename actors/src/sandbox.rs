//! The sandbox for code that came from a peer or an LLM (issue #9): bubblewrap namespaces plus
//! rlimits, with the host never reachable from inside.
//!
//! What one run gets (docs/operations.md, "Sandbox"):
//! * new user, mount, pid, network, IPC, UTS and cgroup namespaces (`bwrap --unshare-all`), no
//!   nested user namespaces, its own session, killed with its parent;
//! * a file system of `/usr` (and the `/bin`, `/lib*` links) read-only, fresh `/proc` and `/dev`,
//!   the job's inputs as read-only files under `/task` (copied in from memory: no host path of
//!   spored's is bound), a private `/work` (cwd, HOME) and `/tmp`, both size-capped tmpfs that
//!   vanish with the run; the root is read-only, so the data dir, the identity key and every other
//!   host file simply do not exist inside;
//! * no network: a network namespace of its own (only its own loopback), and a seccomp filter
//!   that refuses `socket()` for every family but AF_UNIX (and `io_uring_setup`), so not even
//!   that loopback can be used;
//! * rlimits: CPU seconds, address space (memory), processes, file size, open files, no core
//!   dumps; when spored runs as root the run drops to an unused uid/gid of its own (200000 +
//!   pid mod 100000) first, so the process limit counts the sandbox's processes only;
//! * from outside: a wall-clock limit and an output cap, both enforced by killing the run's
//!   process group (the pid namespace dies with it).
//!
//! Where bubblewrap is missing or cannot make namespaces, [`Sandbox::detect`] says why and no
//! peer code runs at all.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use procfs::{processes_of, TreeMeter};

mod procfs;

/// A root-run spored drops to a uid of its own in this range (no account needed): the process
/// limit counts per uid, so two nodes on one host do not share one budget of processes.
const SANDBOX_UID_BASE: u32 = 200_000;
const SANDBOX_UIDS: u32 = 100_000;
/// First descriptor number the inputs are handed to bubblewrap on.
const FIRST_INPUT_FD: i32 = 100;
/// The descriptor the seccomp program is handed to bubblewrap on.
const SECCOMP_FD: i32 = 99;

/// A seccomp filter (classic BPF, as `bwrap --seccomp` takes it): `socket()` of any family but
/// AF_UNIX fails with EAFNOSUPPORT, `io_uring_setup` (which can make sockets too) with the same,
/// x32 system calls likewise, and a process of a foreign architecture is killed. `None` on an
/// architecture without a filter here (the network namespace still isolates).
fn seccomp_program() -> Option<Vec<u8>> {
    // ptrace, process_vm_readv, process_vm_writev, pidfd_getfd: a process of the run reaching
    // into another one (the evaluator's output, its memory) fails with EPERM
    let (arch, nr_socket, nr_io_uring_setup, peek): (u32, u32, u32, [u32; 4]) =
        if cfg!(target_arch = "x86_64") {
            (0xC000_003E, 41, 425, [101, 310, 311, 438])
        } else if cfg!(target_arch = "aarch64") {
            (0xC000_00B7, 198, 425, [117, 270, 271, 438])
        } else {
            return None;
        };
    const LD_W_ABS: u16 = 0x20;
    const JEQ: u16 = 0x15;
    const JGE: u16 = 0x35;
    const RET: u16 = 0x06;
    const KILL_PROCESS: u32 = 0x8000_0000;
    const ALLOW: u32 = 0x7fff_0000;
    let deny = 0x0005_0000 | libc::EAFNOSUPPORT as u32;
    let eperm = 0x0005_0000 | libc::EPERM as u32;
    // (code, jump if true, jump if false, k); jumps count from the next instruction
    let program: [(u16, u8, u8, u32); 16] = [
        (LD_W_ABS, 0, 0, 4), // 0: arch
        (JEQ, 1, 0, arch),   // 1: native → 3
        (RET, 0, 0, KILL_PROCESS),
        (LD_W_ABS, 0, 0, 0),               // 3: nr
        (JGE, 8, 0, 0x4000_0000),          // 4: x32 → deny (13)
        (JEQ, 7, 0, nr_io_uring_setup),    // 5: → deny (13)
        (JEQ, 7, 0, peek[0]),              // 6: → eperm (14)
        (JEQ, 6, 0, peek[1]),              // 7: → eperm
        (JEQ, 5, 0, peek[2]),              // 8: → eperm
        (JEQ, 4, 0, peek[3]),              // 9: → eperm
        (JEQ, 0, 4, nr_socket),            // 10: not socket → allow (15)
        (LD_W_ABS, 0, 0, 16),              // 11: args[0] (family), low half
        (JEQ, 2, 0, libc::AF_UNIX as u32), // 12: AF_UNIX → allow (15)
        (RET, 0, 0, deny),                 // 13: deny
        (RET, 0, 0, eperm),                // 14: eperm
        (RET, 0, 0, ALLOW),                // 15: allow
    ];
    let mut out = Vec::with_capacity(program.len() * 8);
    for (code, jt, jf, k) in program {
        out.extend_from_slice(&code.to_ne_bytes());
        out.push(jt);
        out.push(jf);
        out.extend_from_slice(&k.to_ne_bytes());
    }
    Some(out)
}

/// What one run may use.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub wall: Duration,
    pub cpu: Duration,
    /// Address space per process, and resident memory of all its processes together (MiB).
    pub memory_mb: u64,
    /// Processes (and threads) the run may have at once.
    pub processes: u64,
    /// Bytes of stdout + stderr kept before the run is killed.
    pub output_bytes: usize,
    /// Largest file the run may write, and the size of `/work`, `/tmp` and `/dev/shm` each (MiB).
    pub disk_mb: u64,
}

impl Limits {
    /// The defaults for a run of `budget` (wall and CPU time both the budget).
    pub fn for_budget(budget: Duration) -> Limits {
        Limits {
            wall: budget,
            cpu: budget,
            memory_mb: 2048,
            processes: 64,
            output_bytes: 1 << 20,
            disk_mb: 256,
        }
    }
}

/// One program to run in the sandbox.
#[derive(Clone, Debug)]
pub struct Job {
    /// Files placed read-only under `/task`: (file name, bytes).
    pub inputs: Vec<(String, Vec<u8>)>,
    /// Host directories bound read-only at the same path (an interpreter outside `/usr`, a data
    /// cache). They must be readable by the sandbox's user.
    pub ro_binds: Vec<PathBuf>,
    /// Host directories bound read-only at another path: (host, inside).
    pub ro_binds_at: Vec<(PathBuf, PathBuf)>,
    /// The program (a path that exists inside: under `/usr` or a bound directory) and arguments.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment inside, besides PATH, HOME, TMPDIR and LANG.
    pub env: Vec<(String, String)>,
    pub limits: Limits,
}

/// Why a run was stopped or failed, when the sandbox was the reason.
#[derive(Clone, Debug, PartialEq)]
pub enum Violation {
    WallTime,
    CpuTime,
    Memory,
    Processes,
    Output,
    Network,
    FileAccess,
    FileSize,
}

/// What came of a run.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The program's exit code (128 + n when it died of signal n), `None` when spored killed it.
    pub exit_code: Option<i32>,
    pub stdout: String,
    /// The last lines of stderr.
    pub stderr: String,
    pub violation: Option<Violation>,
    /// CPU time of the whole run (user + system, all processes).
    pub cpu: Duration,
    /// Largest resident set of one process (MiB).
    pub peak_rss_mb: f64,
    pub wall: Duration,
    /// Why the run failed, in this node's words, with the limit it hit (`None`: it exited 0
    /// within its limits). Never text the program printed: this may be signed into a record.
    pub failure: Option<String>,
    /// The program's own last error line, for local eyes only (logs, the run output).
    pub detail: Option<String>,
}

impl Outcome {
    fn reason(&self, limits: &Limits) -> Option<String> {
        Some(match &self.violation {
            Some(Violation::WallTime) => format!(
                "sandbox: time limit: ran past {:.0} s of wall-clock time and was killed",
                limits.wall.as_secs_f64()
            ),
            Some(Violation::CpuTime) => format!(
                "sandbox: CPU time limit: used more than {:.0} s of CPU and was killed",
                limits.cpu.as_secs_f64()
            ),
            Some(Violation::Output) => format!(
                "sandbox: output limit: printed more than {} bytes and was killed",
                limits.output_bytes
            ),
            Some(Violation::Memory) => {
                format!("sandbox: memory limit ({} MiB) reached", limits.memory_mb)
            }
            Some(Violation::Processes) => {
                format!("sandbox: process limit ({}) reached", limits.processes)
            }
            Some(Violation::Network) => {
                "sandbox: network access denied (no network in the sandbox)".into()
            }
            Some(Violation::FileAccess) => "sandbox: file access outside the sandbox denied".into(),
            Some(Violation::FileSize) => format!(
                "sandbox: file size limit ({} MiB) reached and the run was killed",
                limits.disk_mb
            ),
            None => match self.exit_code {
                Some(0) => return None,
                Some(code) if code > 128 => format!("killed by signal {}", code - 128),
                Some(code) => format!("exited with code {code}"),
                None => "stopped".into(),
            },
        })
    }
}

/// A working bubblewrap, checked once.
#[derive(Clone, Debug)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// Root drops to nobody; anyone else runs as themselves.
    drop_to: Option<u32>,
}

impl Sandbox {
    /// Finds bubblewrap (`SPORED_BWRAP` names it, else the usual places) and checks that it
    /// can make the namespaces a run needs, by running `/usr/bin/cat` in them. The error says
    /// what is missing.
    pub fn detect() -> Result<Sandbox, String> {
        let named = std::env::var_os("SPORED_BWRAP").map(PathBuf::from);
        let candidates = match &named {
            Some(path) => vec![path.clone()],
            None => ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
                .iter()
                .map(PathBuf::from)
                .collect(),
        };
        let bwrap = candidates.into_iter().find(|p| p.is_file()).ok_or(
            "bubblewrap (bwrap) is not installed: code from peers or an LLM is not run \
                 (Debian/Ubuntu: apt-get install bubblewrap)",
        )?;
        let drop_to = (unsafe { libc::geteuid() } == 0)
            .then(|| SANDBOX_UID_BASE + std::process::id() % SANDBOX_UIDS);
        let sandbox = Sandbox { bwrap, drop_to };
        let probe = Job {
            inputs: vec![("probe".into(), b"ok".to_vec())],
            ro_binds: Vec::new(),
            ro_binds_at: Vec::new(),
            program: "/usr/bin/cat".into(),
            args: vec!["/task/probe".into()],
            env: Vec::new(),
            limits: Limits::for_budget(Duration::from_secs(10)),
        };
        let out = sandbox.run(&probe);
        if out.exit_code == Some(0) && out.stdout == "ok" {
            Ok(sandbox)
        } else {
            Err(format!(
                "bubblewrap cannot create the sandbox's namespaces here (user namespaces \
                 disabled?): code from peers or an LLM is not run. bwrap said: {}",
                out.stderr.trim()
            ))
        }
    }

    /// The same sandbox run as the node's own user, as on a node that is not root (a root node
    /// runs it as an unprivileged user of its own): for tests, on a root machine, of what a
    /// non-root node allows.
    pub fn as_own_user(mut self) -> Sandbox {
        self.drop_to = None;
        self
    }

    /// Runs `job` to its end or its limit. Never panics; a failure to start is an outcome with
    /// the reason on stderr.
    pub fn run(&self, job: &Job) -> Outcome {
        let started = Instant::now();
        let mut out = match self.run_inner(job) {
            Ok(out) => out,
            Err(e) => Outcome {
                stderr: format!("sandbox: cannot start: {e}"),
                exit_code: Some(127),
                ..Outcome::default()
            },
        };
        out.wall = started.elapsed();
        out.failure = out.reason(&job.limits);
        out.detail = out.failure.as_ref().and(last_error_line(&out.stderr));
        out
    }

    fn args(&self, job: &Job) -> Vec<String> {
        let disk = (job.limits.disk_mb << 20).to_string();
        let mut a: Vec<String> = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for link in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host = Path::new("/").join(link);
            match std::fs::read_link(&host) {
                Ok(target) => a.extend([
                    "--symlink".into(),
                    target.to_string_lossy().into_owned(),
                    host.to_string_lossy().into_owned(),
                ]),
                Err(_) if host.is_dir() => a.extend([
                    "--ro-bind".into(),
                    host.to_string_lossy().into_owned(),
                    host.to_string_lossy().into_owned(),
                ]),
                Err(_) => {}
            }
        }
        a.extend([
            "--proc".into(),
            "/proc".into(),
            "--dev".into(),
            "/dev".into(),
        ]);
        // every writable place is a tmpfs of a fixed size (`/dev/shm` too: bubblewrap's
        // `/dev` would hold any amount)
        for dir in ["/tmp", "/work", "/dev/shm"] {
            a.extend(["--size".into(), disk.clone(), "--tmpfs".into(), dir.into()]);
        }
        // after the tmpfs mounts, so a host directory under /work or /tmp stays visible
        for dir in &job.ro_binds {
            let d = dir.to_string_lossy().into_owned();
            a.extend(["--ro-bind".into(), d.clone(), d]);
        }
        for (host, inside) in &job.ro_binds_at {
            a.extend([
                "--ro-bind".into(),
                host.to_string_lossy().into_owned(),
                inside.to_string_lossy().into_owned(),
            ]);
        }
        for (i, (name, _)) in job.inputs.iter().enumerate() {
            a.extend([
                "--ro-bind-data".into(),
                (FIRST_INPUT_FD + i as i32).to_string(),
                format!("/task/{name}"),
            ]);
        }
        if seccomp_program().is_some() {
            a.extend(["--seccomp".into(), SECCOMP_FD.to_string()]);
        }
        a.extend(["--remount-ro".into(), "/".into()]);
        a.extend(["--chdir".into(), "/work".into(), "--clearenv".into()]);
        let mut env = vec![
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            ("HOME".into(), "/work".into()),
            ("TMPDIR".into(), "/tmp".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ];
        env.extend(job.env.iter().cloned());
        for (k, v) in env {
            a.extend(["--setenv".into(), k, v]);
        }
        a.push("--".into());
        a.push(job.program.to_string_lossy().into_owned());
        a.extend(job.args.iter().cloned());
        a
    }

    fn run_inner(&self, job: &Job) -> Result<Outcome, String> {
        for (name, _) in &job.inputs {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(format!("bad input file name {name:?}"));
            }
        }
        let fds: Vec<i32> = job
            .inputs
            .iter()
            .map(|(_, bytes)| memfd_with(bytes))
            .collect::<Result<_, _>>()?;
        let seccomp = seccomp_program().map(|p| memfd_with(&p)).transpose()?;
        let _close = CloseOnDrop(fds.iter().copied().chain(seccomp).collect());
        let limits = job.limits.clone();
        let nproc = match self.drop_to {
            Some(_) => limits.processes,
            // the limit counts every process of this user, so leave room for those running now
            None => limits.processes + processes_of(unsafe { libc::getuid() }),
        };
        // stdout and stderr are sockets, not pipes: a process of the run cannot reopen a socket
        // through /proc/<pid>/fd (a pipe it can, when it runs as the node's own user), so
        // nothing but what it was handed writes the lines the metric is read from
        let (stdout, child_stdout) = socket_pair()?;
        let (stderr, child_stderr) = socket_pair()?;
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(self.args(job))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::from(child_stdout))
            .stderr(Stdio::from(child_stderr));
        if let Some(id) = self.drop_to {
            cmd.uid(id).gid(id);
        }
        let cpu = limits.cpu.as_secs().max(1);
        let memory = limits.memory_mb << 20;
        let fsize = limits.disk_mb << 20;
        let child_fds = fds.clone();
        // SAFETY: only async-signal-safe calls (setsid, setrlimit, dup2, fcntl) between fork
        // and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let set = |resource, soft: u64, hard: u64| {
                    let lim = libc::rlimit {
                        rlim_cur: soft as libc::rlim_t,
                        rlim_max: hard as libc::rlim_t,
                    };
                    if libc::setrlimit(resource, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                set(libc::RLIMIT_CPU, cpu, cpu + 1)?;
                set(libc::RLIMIT_AS, memory, memory)?;
                set(libc::RLIMIT_NPROC, nproc, nproc)?;
                set(libc::RLIMIT_FSIZE, fsize, fsize)?;
                set(libc::RLIMIT_NOFILE, 256, 256)?;
                set(libc::RLIMIT_CORE, 0, 0)?;
                if let Some(fd) = seccomp {
                    if libc::dup2(fd, SECCOMP_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (i, fd) in child_fds.iter().enumerate() {
                    let target = FIRST_INPUT_FD + i as i32;
                    if libc::dup2(*fd, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bwrap.display()))?;
        // our copies of the child's ends: closed, so the readers see the end of the output
        drop(cmd);
        let pid = child.id() as i32;
        let over = Arc::new(AtomicBool::new(false));
        let cap = limits.output_bytes;
        let stdout_reader = capped_reader(stdout, cap, over.clone());
        let stderr_reader = capped_reader(stderr, cap, over.clone());
        let deadline = Instant::now() + limits.wall;
        let mut killed = None;
        // bubblewrap's own init reaps the run's processes, so their usage never reaches a
        // wait4 here: the tree under bwrap is sampled from /proc instead
        let mut meter = TreeMeter::new(pid);
        let mut polls = 0u32;
        let status = loop {
            let mut status = 0;
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break status;
            }
            polls += 1;
            if polls % 10 == 1 {
                meter.sample();
            }
            if r < 0 {
                return Err(format!("wait: {}", std::io::Error::last_os_error()));
            }
            if killed.is_none() {
                if over.load(Ordering::Relaxed) {
                    killed = Some(Violation::Output);
                } else if meter.tree_rss_kib > limits.memory_mb * 1024 {
                    // the address-space limit is per process: this bounds all of them together
                    // (sampled every 100 ms)
                    killed = Some(Violation::Memory);
                } else if Instant::now() >= deadline {
                    killed = Some(Violation::WallTime);
                }
                if killed.is_some() {
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // the reaped child's std handle must not be waited on again
        std::mem::forget(child);
        let stdout = stdout_reader.join().unwrap_or_default();
        let stderr = stderr_reader.join().unwrap_or_default();
        let exit = std::process::ExitStatus::from_raw(status);
        let exit_code = match (killed.is_some(), exit.code(), exit.signal()) {
            (true, _, _) => None,
            (false, Some(c), _) => Some(c),
            (false, None, Some(s)) => Some(128 + s),
            (false, None, None) => None,
        };
        let cpu_used = meter.cpu();
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let stderr = tail_lines(&String::from_utf8_lossy(&stderr), 40);
        let violation = killed.or_else(|| classify(exit_code, cpu_used, &limits, &stdout, &stderr));
        Ok(Outcome {
            exit_code,
            stdout,
            stderr,
            violation,
            cpu: cpu_used,
            peak_rss_mb: meter.peak_rss_kib as f64 / 1024.0,
            wall: Duration::ZERO,
            failure: None,
            detail: None,
        })
    }
}

/// Which limit a failed run ran into, from how it ended and what it printed. A program that
/// exited 0 broke no limit.
fn classify(
    exit_code: Option<i32>,
    cpu_used: Duration,
    limits: &Limits,
    stdout: &str,
    stderr: &str,
) -> Option<Violation> {
    let code = exit_code?;
    if code == 0 {
        return None;
    }
    if code == 128 + libc::SIGXCPU || cpu_used >= limits.cpu {
        return Some(Violation::CpuTime);
    }
    if code == 128 + libc::SIGXFSZ {
        return Some(Violation::FileSize);
    }
    let text = format!("{stderr}\n{stdout}");
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&[
        "MemoryError",
        "Cannot allocate memory",
        "std::bad_alloc",
        "out of memory",
        "memory allocation of",
    ]) {
        return Some(Violation::Memory);
    }
    if has(&[
        "BlockingIOError",
        "Cannot fork",
        "fork: retry",
        "can't fork",
    ]) || (text.contains("Resource temporarily unavailable") && text.contains("fork"))
    {
        return Some(Violation::Processes);
    }
    if has(&[
        "Network is unreachable",
        "Temporary failure in name resolution",
        "Name or service not known",
        "Address family not supported",
        "Cannot assign requested address",
    ]) {
        return Some(Violation::Network);
    }
    if has(&["Read-only file system"]) || names_outside_path(&text) {
        return Some(Violation::FileAccess);
    }
    if has(&["File too large"]) {
        return Some(Violation::FileSize);
    }
    None
}

/// Whether an error names a missing or forbidden path outside the run's own `/work` and
/// `/task` (host paths, the private `/tmp` included, do not exist inside).
fn names_outside_path(text: &str) -> bool {
    text.lines().any(|line| {
        if !(line.contains("No such file or directory") || line.contains("Permission denied")) {
            return false;
        }
        line.split(['\'', '"', ' ', ':'])
            .filter(|w| w.starts_with('/') && w.len() > 1)
            .any(|p| {
                !["/work", "/task", "/usr", "/proc", "/dev"]
                    .iter()
                    .any(|ok| p == *ok || p.starts_with(&format!("{ok}/")))
            })
    })
}

/// The line that best says what went wrong: the last error-looking line of stderr.
fn last_error_line(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|l| {
            let l = l.trim_start();
            l.contains("Error") || l.contains("error") || l.contains("rror:")
        })
        .or(lines.last())
        .map(|l| l.trim().chars().take(300).collect())
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reads a pipe to its end, keeping at most `cap` bytes and raising `over` past them.
fn capped_reader(
    mut pipe: impl Read + Send + 'static,
    cap: usize,
    over: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return kept,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    if n > room {
                        over.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
    })
}

/// A connected pair of Unix stream sockets (close-on-exec): ours to read, the child's to write.
fn socket_pair() -> Result<(std::os::unix::net::UnixStream, std::os::fd::OwnedFd), String> {
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    // the child writes only; we only read
    let _ = ours.shutdown(std::net::Shutdown::Write);
    let _ = theirs.shutdown(std::net::Shutdown::Read);
    Ok((ours, theirs.into()))
}

/// An anonymous in-memory file holding `bytes`, positioned at its start.
fn memfd_with(bytes: &[u8]) -> Result<i32, String> {
    let name = c"spored-input";
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    let mut written = 0;
    while written < bytes.len() {
        let n = unsafe {
            libc::write(
                fd,
                bytes[written..].as_ptr() as *const libc::c_void,
                bytes.len() - written,
            )
        };
        if n <= 0 {
            let e = std::io::Error::last_os_error();
            unsafe { libc::close(fd) };
            return Err(format!("writing an input: {e}"));
        }
        written += n as usize;
    }
    unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    Ok(fd)
}

struct CloseOnDrop(Vec<i32>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        for fd in &self.0 {
            unsafe { libc::close(*fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_naming_host_paths_are_file_access() {
        assert!(names_outside_path(
            "FileNotFoundError: [Errno 2] No such file or directory: '/root/.spore/identity'"
        ));
        assert!(!names_outside_path(
            "FileNotFoundError: [Errno 2] No such file or directory: '/work/out.txt'"
        ));
        assert!(names_outside_path(
            "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/.tmpAb12/node/identity'"
        ));
        assert!(!names_outside_path("ValueError: bad input"));
    }

    #[test]
    fn a_clean_exit_breaks_no_limit() {
        let limits = Limits::for_budget(Duration::from_secs(5));
        assert_eq!(
            classify(Some(0), Duration::ZERO, &limits, "", "MemoryError"),
            None
        );
        assert_eq!(
            classify(Some(1), Duration::ZERO, &limits, "", "MemoryError"),
            Some(Violation::Memory)
        );
        assert_eq!(
            classify(Some(128 + libc::SIGXCPU), Duration::ZERO, &limits, "", ""),
            Some(Violation::CpuTime)
        );
    }
}
