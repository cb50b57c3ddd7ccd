//! Command tasks (issue #9): the artifact is one source file, the metric comes from an evaluator
//! pinned by the task's `prepare_cid`, and every run of either happens in the [`sandbox`].
//!
//! The evaluator artifact is a document: one header line, then the evaluator's source.
//!
//! ```text
//! spored-evaluator/1 candidate=sort.py interpreter=python3 tolerance=0.25
//! <the evaluator program>
//! ```
//!
//! A run puts the evaluator at `/task/evaluate.<ext>` and the candidate at `/task/<candidate>`
//! (both read-only), and runs `<interpreter> /task/evaluate.<ext> /task/<candidate>` in `/work`.
//! The evaluator runs the candidate, checks it, and prints `<metric>: <value>`; the runner takes
//! the *last* line that starts with the metric's name (the candidate shares the evaluator's
//! output, and cannot print after the evaluator's last word). `tolerance` is the relative
//! difference within which a rerun agrees with a claim (timings vary between runs).
//!
//! The reference's `python_train_script` records (a `train.py` run under PyTorch) go through the
//! same sandbox with `prepare.py` and `batching.py` beside them, when a Python with PyTorch is
//! configured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sandbox::{Job, Limits};

/// `artifact_type` of a command task: one source file.
pub const ARTIFACT_TYPE: &str = "source_file";
/// `task_type` of a command task.
pub const TASK_TYPE: &str = "command";
/// The reference's artifact: a PyTorch `train.py`.
pub const REFERENCE_ARTIFACT: &str = "python_train_script";

const HEADER: &str = "spored-evaluator/1";

/// The interpreters an evaluator may name.
pub const INTERPRETERS: [&str; 2] = ["python3", "sh"];

/// A parsed evaluator document.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluator {
    /// The file name the candidate is given (and the name diffs use).
    pub candidate: String,
    /// `python3` or `sh`.
    pub interpreter: String,
    /// Relative tolerance of a rerun (0.25 = within 25 % of the claim).
    pub tolerance: f64,
    pub source: Vec<u8>,
}

impl Evaluator {
    pub fn parse(document: &[u8]) -> Result<Evaluator, String> {
        let split = document
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("an evaluator document starts with a header line")?;
        let header = std::str::from_utf8(&document[..split])
            .map_err(|_| "the evaluator's header is not UTF-8")?;
        let mut words = header.split_whitespace();
        if words.next() != Some(HEADER) {
            return Err(format!(
                "not an evaluator document (header must start {HEADER})"
            ));
        }
        let mut candidate = None;
        let mut interpreter = None;
        let mut tolerance = None;
        for word in words {
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| format!("evaluator header: {word:?} is not key=value"))?;
            match k {
                "candidate" => candidate = Some(v.to_string()),
                "interpreter" => interpreter = Some(v.to_string()),
                "tolerance" => {
                    tolerance = Some(
                        v.parse::<f64>()
                            .ok()
                            .filter(|t| t.is_finite() && (0.0..=1.0).contains(t))
                            .ok_or_else(|| {
                                format!("evaluator header: tolerance={v} is not in 0..=1")
                            })?,
                    )
                }
                other => return Err(format!("evaluator header: unknown key {other:?}")),
            }
        }
        let candidate = candidate.ok_or("evaluator header: candidate= is missing")?;
        check_file_name(&candidate)?;
        let interpreter = interpreter.ok_or("evaluator header: interpreter= is missing")?;
        if !INTERPRETERS.contains(&interpreter.as_str()) {
            return Err(format!(
                "evaluator header: interpreter {interpreter:?} is not one of {INTERPRETERS:?}"
            ));
        }
        Ok(Evaluator {
            candidate,
            interpreter,
            tolerance: tolerance.unwrap_or(0.0),
            source: document[split + 1..].to_vec(),
        })
    }

    /// The document whose SHA-256 is the task's `prepare_cid`.
    pub fn document(&self) -> Vec<u8> {
        let mut out = format!(
            "{HEADER} candidate={} interpreter={} tolerance={}\n",
            self.candidate, self.interpreter, self.tolerance
        )
        .into_bytes();
        out.extend_from_slice(&self.source);
        out
    }

    /// The evaluator's file name inside the sandbox.
    pub fn file_name(&self) -> &'static str {
        match self.interpreter.as_str() {
            "sh" => "evaluate.sh",
            _ => "evaluate.py",
        }
    }

    /// The sandboxed run of `candidate` under this evaluator.
    pub fn job(&self, candidate: &[u8], interpreter: &Interpreter, limits: Limits) -> Job {
        Job {
            inputs: vec![
                (self.file_name().into(), self.source.clone()),
                (self.candidate.clone(), candidate.to_vec()),
            ],
            ro_binds: interpreter.binds.clone(),
            ro_binds_at: Vec::new(),
            program: interpreter.program.clone(),
            args: vec![
                format!("/task/{}", self.file_name()),
                format!("/task/{}", self.candidate),
            ],
            env: vec![("PYTHONDONTWRITEBYTECODE".into(), "1".into())],
            limits,
        }
    }
}

/// How this node runs sandboxed code (config: `sandbox_python`, `sandbox_memory_mb`, …).
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// The Python evaluators run under (`python3`: Debian's `/usr/bin/python3` first).
    pub python: String,
    pub memory_mb: u64,
    pub processes: u64,
    pub output_bytes: usize,
    /// A Python with PyTorch and the reference's workspace directory, for `python_train_script`
    /// records.
    pub torch_python: Option<String>,
    pub reference_workspace: Option<PathBuf>,
    /// Directories no host directory bound into the sandbox may contain (the data dir with the
    /// node's key, the user's home); nor may one lie inside the data dir.
    pub protected: Vec<PathBuf>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            python: "python3".into(),
            memory_mb: 2048,
            processes: 64,
            output_bytes: 1 << 20,
            torch_python: None,
            reference_workspace: None,
            protected: Vec::new(),
        }
    }
}

impl SandboxOptions {
    /// The limits of one run of `budget`.
    pub fn limits(&self, budget: Duration) -> Limits {
        Limits {
            memory_mb: self.memory_mb,
            processes: self.processes,
            output_bytes: self.output_bytes,
            ..Limits::for_budget(budget)
        }
    }

    /// The interpreter an evaluator names, on this node.
    pub fn interpreter(&self, name: &str) -> Result<Interpreter, String> {
        let interpreter = match name {
            "python3" => Interpreter::resolve(&self.python)?,
            "sh" => Interpreter::resolve("/bin/sh")?,
            other => return Err(format!("no interpreter {other:?} here")),
        };
        self.check_binds(&interpreter.binds)?;
        Ok(interpreter)
    }

    /// Refuses host directories to bind that would show the sandbox a protected one: one that
    /// contains the data dir or the home directory (a Python whose `sys.prefix` is `/home/me`
    /// or `/`), or lies inside the data dir.
    pub fn check_binds(&self, binds: &[PathBuf]) -> Result<(), String> {
        for bind in binds {
            let bind = std::fs::canonicalize(bind).unwrap_or_else(|_| bind.clone());
            for (i, protected) in self.protected.iter().enumerate() {
                let protected =
                    std::fs::canonicalize(protected).unwrap_or_else(|_| protected.clone());
                let inside_data_dir = i == 0 && bind.starts_with(&protected);
                if protected.starts_with(&bind) || inside_data_dir {
                    return Err(format!(
                        "{} would be bound into the sandbox and shows {}: use a Python \
                         installed elsewhere (sandbox_python, torch_python)",
                        bind.display(),
                        protected.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// What re-running `python_train_script` records needs; the error is why they are skipped.
    pub fn reference_workspace(&self) -> Result<ReferenceWorkspace, String> {
        let python = self.torch_python.as_deref().ok_or(
            "python_train_script records need a Python with PyTorch: set torch_python (and \
             reference_workspace) in config.toml",
        )?;
        let dir = self.reference_workspace.as_deref().ok_or(
            "python_train_script records need the reference's workspace: set reference_workspace \
             (a directory with its prepare.py and batching.py)",
        )?;
        let workspace = ReferenceWorkspace::open(python, dir)?;
        let mut binds = workspace.python.binds.clone();
        binds.extend(workspace.cache.clone());
        self.check_binds(&binds)?;
        Ok(workspace)
    }
}

/// A candidate's or evaluator's file name: one plain path component.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with("evaluate.");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "candidate file name {name:?} must be a plain file name (letters, digits, . _ -)"
        ))
    }
}

/// The metric: the last stdout line of the form `<metric>: <number>`, finite.
pub fn parse_metric(stdout: &str, metric: &str) -> Option<f64> {
    stdout.lines().rev().find_map(|line| {
        let rest = line.trim_start().strip_prefix(metric)?.strip_prefix(':')?;
        let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
        value.is_finite().then_some(value)
    })
}

/// An interpreter on this node and what the sandbox must bind for it.
#[derive(Clone, Debug)]
pub struct Interpreter {
    pub program: PathBuf,
    /// Read-only binds (its installation, when outside `/usr`).
    pub binds: Vec<PathBuf>,
    /// What it says its version is (`Python 3.11.2`).
    pub version: String,
}

impl Interpreter {
    /// Resolves `program` (absolute path, or a name on PATH). A Python outside `/usr` (a venv, a
    /// pyenv build) has its `sys.prefix` and `sys.base_prefix` bound read-only.
    pub fn resolve(program: &str) -> Result<Interpreter, String> {
        let path = if program.contains('/') {
            PathBuf::from(program)
        } else {
            which(program).ok_or_else(|| format!("{program} is not on PATH"))?
        };
        let absolute = std::path::absolute(&path).map_err(|e| format!("{program}: {e}"))?;
        let real =
            std::fs::canonicalize(&absolute).map_err(|e| format!("{}: {e}", absolute.display()))?;
        let python = real
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("python"));
        let mut binds = Vec::new();
        let mut version = String::new();
        if python {
            let out = std::process::Command::new(&absolute)
                .args([
                    "-c",
                    "import sys; print(sys.prefix); print(sys.base_prefix); print('Python', sys.version.split()[0])",
                ])
                .output()
                .map_err(|e| format!("{}: {e}", absolute.display()))?;
            if !out.status.success() {
                return Err(format!("{} does not run", absolute.display()));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let lines: Vec<&str> = text.lines().collect();
            for prefix in lines.iter().take(2) {
                let p = PathBuf::from(prefix);
                if !p.starts_with("/usr") && p.is_absolute() && !binds.contains(&p) {
                    binds.push(p);
                }
            }
            version = lines.get(2).unwrap_or(&"").to_string();
        }
        for p in [&absolute, &real] {
            let inside_usr = p.starts_with("/usr") || p.starts_with("/bin");
            let covered = binds.iter().any(|b| p.starts_with(b));
            if !inside_usr && !covered {
                return Err(format!(
                    "{} is outside /usr and not a Python installation the sandbox can bind",
                    p.display()
                ));
            }
        }
        Ok(Interpreter {
            program: absolute,
            binds,
            version,
        })
    }

    /// Whether `import torch` works (the reference's train.py needs it); its version.
    pub fn torch_version(&self) -> Option<String> {
        let out = std::process::Command::new(&self.program)
            .args(["-c", "import torch; print(torch.__version__)"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

fn which(name: &str) -> Option<PathBuf> {
    // Debian's own interpreter first: it lives under /usr, which every sandbox has
    let system = Path::new("/usr/bin").join(name);
    if system.is_file() {
        return Some(system);
    }
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// What a node needs to re-run the reference's `python_train_script` records.
#[derive(Clone, Debug)]
pub struct ReferenceWorkspace {
    /// A Python with PyTorch.
    pub python: Interpreter,
    pub torch_version: String,
    /// `prepare.py` and `batching.py` of the reference's workspace.
    pub prepare_py: Vec<u8>,
    pub batching_py: Vec<u8>,
    /// The reference's data and tokenizer cache (`~/.cache/autoresearch`), bound read-only.
    pub cache: Option<PathBuf>,
}

impl ReferenceWorkspace {
    /// Checks the configured Python and workspace directory; the error is the reason such
    /// records are skipped.
    pub fn open(python: &str, workspace: &Path) -> Result<ReferenceWorkspace, String> {
        let python = Interpreter::resolve(python)?;
        let torch_version = python.torch_version().ok_or_else(|| {
            format!(
                "{} cannot import torch (the reference's train.py needs PyTorch)",
                python.program.display()
            )
        })?;
        let read = |name: &str| {
            std::fs::read(workspace.join(name))
                .map_err(|e| format!("{}: {e}", workspace.join(name).display()))
        };
        let cache = workspace.join("cache");
        Ok(ReferenceWorkspace {
            python,
            torch_version,
            prepare_py: read("prepare.py")?,
            batching_py: read("batching.py").unwrap_or_default(),
            cache: cache.is_dir().then_some(cache),
        })
    }

    /// The sandboxed run of a record's `train.py`: `python -u /task/train.py`, budget + the
    /// reference's 300 s grace.
    pub fn job(&self, train_py: &[u8], budget: Duration, limits: Limits) -> Job {
        let mut ro_binds_at = Vec::new();
        if let Some(cache) = &self.cache {
            ro_binds_at.push((
                cache.clone(),
                PathBuf::from("/home/spore/.cache/autoresearch"),
            ));
        }
        Job {
            inputs: vec![
                ("train.py".into(), train_py.to_vec()),
                ("prepare.py".into(), self.prepare_py.clone()),
                ("batching.py".into(), self.batching_py.clone()),
            ],
            ro_binds: self.python.binds.clone(),
            ro_binds_at,
            program: self.python.program.clone(),
            args: vec!["-u".into(), "/task/train.py".into()],
            env: vec![
                ("HOME".into(), "/home/spore".into()),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ],
            limits: Limits {
                wall: budget + Duration::from_secs(300),
                cpu: (budget + Duration::from_secs(300)) * 64,
                memory_mb: limits.memory_mb.max(16 << 10),
                processes: limits.processes.max(256),
                ..limits
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluator_documents_round_trip() {
        let e = Evaluator {
            candidate: "sort.py".into(),
            interpreter: "python3".into(),
            tolerance: 0.25,
            source: b"print('x: 1')\n".to_vec(),
        };
        let doc = e.document();
        assert!(doc.starts_with(
            b"spored-evaluator/1 candidate=sort.py interpreter=python3 tolerance=0.25\n"
        ));
        assert_eq!(Evaluator::parse(&doc).unwrap(), e);
        for bad in [
            &b"no header"[..],
            b"spored-evaluator/1 candidate=../x interpreter=python3\n",
            b"spored-evaluator/1 candidate=a.py interpreter=perl\n",
            b"spored-evaluator/1 candidate=a.py interpreter=python3 tolerance=5\n",
            b"spored-evaluator/1 candidate=a.py\n",
            b"spored-evaluator/1 candidate=a.py interpreter=sh colour=red\n",
        ] {
            assert!(
                Evaluator::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_last_metric_line_counts() {
        let out = "sort_ms: 0.001\nworking\nsort_ms: 412.5 (median of 3)\n";
        assert_eq!(parse_metric(out, "sort_ms"), Some(412.5));
        assert_eq!(parse_metric("sort_ms_x: 3\n", "sort_ms"), None);
        assert_eq!(parse_metric("sort_ms: nan\n", "sort_ms"), None);
        assert_eq!(parse_metric("score: -2.5e3\n", "score"), Some(-2500.0));
    }

    #[test]
    fn binds_that_would_show_the_data_dir_or_home_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home/me");
        let data = home.join(".spore");
        let venv = home.join("venvs/eval");
        for dir in [&data, &venv] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let options = SandboxOptions {
            protected: vec![data.clone(), home.clone()],
            ..SandboxOptions::default()
        };
        // a venv inside the home directory is fine; /usr is fine
        assert!(options.check_binds(&[venv, "/usr".into()]).is_ok());
        // a prefix that is, or contains, the home or the data dir is not
        for bad in [
            home.clone(),
            root.path().join("home"),
            data.clone(),
            data.join("x"),
        ] {
            let err = options.check_binds(std::slice::from_ref(&bad)).unwrap_err();
            assert!(
                err.contains("would be bound into the sandbox"),
                "{bad:?}: {err}"
            );
        }
    }
}
