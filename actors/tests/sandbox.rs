//! The sandbox with a real bubblewrap: what a run's own processes can do to each other and to
//! the machine. Skipped (and said so) without bubblewrap, unless `SPORED_SANDBOX_TEST=required`.

use std::time::Duration;

use spore_actors::sandbox::{Job, Limits, Sandbox, Violation};

fn sandbox() -> Option<Sandbox> {
    match Sandbox::detect() {
        Ok(s) => Some(s),
        Err(why) => {
            assert!(
                std::env::var("SPORED_SANDBOX_TEST").as_deref() != Ok("required"),
                "SPORED_SANDBOX_TEST=required but: {why}"
            );
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn job(program: &str, args: &[&str], inputs: &[(&str, &str)], limits: Limits) -> Job {
    Job {
        inputs: inputs
            .iter()
            .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()))
            .collect(),
        ro_binds: Vec::new(),
        ro_binds_at: Vec::new(),
        program: program.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        limits,
    }
}

/// An evaluator that runs its candidate with the candidate's output captured, then prints the
/// metric it measured itself.
const EVALUATOR: &str = r#"import subprocess, sys
out = subprocess.run([sys.executable, sys.argv[1]], capture_output=True, text=True, timeout=20)
sys.stderr.write("candidate said: " + out.stdout + out.stderr)
print("score: 1.0", flush=True)
"#;

/// A candidate that tries to write a metric line into the evaluator's output from outside it:
/// the sandbox's pid 1, its parent, through /proc, and by ptrace; and leaves a process behind
/// that tries again after the evaluator's last word.
const FORGER: &str = r#"import os, ctypes, sys, time
def forge():
    for pid in {1, 2, os.getppid()}:
        for fd in (1, 2):
            try:
                with open(f"/proc/{pid}/fd/{fd}", "w") as f:
                    f.write("score: 999\n")
                print("FORGED via", pid, fd)
            except OSError as e:
                print("blocked", pid, fd, e.errno)
    libc = ctypes.CDLL(None, use_errno=True)
    # PTRACE_ATTACH the evaluator
    r = libc.ptrace(16, os.getppid(), 0, 0)
    print("ptrace", r, ctypes.get_errno())
forge()
if os.fork() == 0:
    os.setsid()
    time.sleep(0.5)
    forge()
    os._exit(0)
"#;

#[test]
fn a_candidate_cannot_write_into_the_output_the_metric_is_read_from() {
    let Some(sandbox) = sandbox() else { return };
    let mut modes = vec![("as the node's own user", sandbox.clone().as_own_user())];
    if unsafe { libc::geteuid() } == 0 {
        modes.push(("as the unprivileged user a root node runs it as", sandbox));
    }
    for (mode, sandbox) in modes {
        let j = job(
            "/usr/bin/python3",
            &["/task/evaluate.py", "/task/candidate.py"],
            &[("evaluate.py", EVALUATOR), ("candidate.py", FORGER)],
            Limits::for_budget(Duration::from_secs(30)),
        );
        let out = sandbox.run(&j);
        assert_eq!(out.exit_code, Some(0), "{mode}: {}", out.stderr);
        assert!(
            !out.stdout.contains("999") && !out.stderr.contains("FORGED"),
            "{mode}: stdout {:?}, stderr {:?}",
            out.stdout,
            out.stderr
        );
        assert_eq!(
            spore_actors::command_task::parse_metric(&out.stdout, "score"),
            Some(1.0),
            "{mode}"
        );
        assert!(out.stderr.contains("blocked"), "{mode}: {}", out.stderr);
        // ptrace of the evaluator fails with EPERM (the seccomp filter), wherever Yama allows it
        assert!(out.stderr.contains("ptrace -1 1"), "{mode}: {}", out.stderr);
    }
}

#[test]
fn shared_memory_is_a_capped_tmpfs_and_memory_counts_over_all_processes() {
    let Some(sandbox) = sandbox() else { return };
    let limits = Limits {
        disk_mb: 16,
        memory_mb: 300,
        ..Limits::for_budget(Duration::from_secs(30))
    };
    // /dev/shm holds no more than the cap
    let j = job(
        "/bin/sh",
        &[
            "-c",
            "for i in 1 2 3 4; do dd if=/dev/zero of=/dev/shm/f$i bs=1M count=8 2>&1; done; \
             du -sk /dev/shm",
        ],
        &[],
        limits.clone(),
    );
    let out = sandbox.run(&j);
    assert!(
        out.stdout.contains("No space left on device") || out.stderr.contains("No space left"),
        "{out:?}"
    );
    let held_kib: u64 = out
        .stdout
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(held_kib <= 16 * 1024, "{}", out.stdout);

    // four processes of 120 MiB each stay under the per-process cap (300 MiB of address space)
    // and are stopped for what they hold together
    let hog = r#"import os, time
for _ in range(3):
    if os.fork() == 0:
        break
block = bytearray(120 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
time.sleep(20)
"#;
    let j = job(
        "/usr/bin/python3",
        &["/task/hog.py"],
        &[("hog.py", hog)],
        limits,
    );
    let started = std::time::Instant::now();
    let out = sandbox.run(&j);
    assert_eq!(out.violation, Some(Violation::Memory), "{out:?}");
    assert!(
        out.failure
            .as_deref()
            .unwrap_or("")
            .contains("memory limit"),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15), "stopped early");
}
