//! `spored start`, `stop` and `log`: the node as a background service of one data dir.

mod support;

use support::{import_lines, info, spored, vector_lines, LOOPBACK_RUN};

/// `spored start` with the loopback flags `run` gets in the other tests.
fn start_args() -> Vec<&'static str> {
    let mut args = LOOPBACK_RUN.to_vec();
    args[0] = "start";
    args.push("--no-train");
    args
}

/// The pid `spored start` wrote.
fn pid_of(dir: &std::path::Path) -> u32 {
    std::fs::read_to_string(dir.join("spored.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn run(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = spored(dir).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_runs_the_node_in_the_background_and_stop_ends_it_keeping_its_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ok, out, err) = run(dir, &start_args());
    let _guard = support::StopOnDrop(dir.to_path_buf());
    assert!(ok, "{err}");
    assert!(out.starts_with("started pid "), "{out}");
    assert!(out.contains("explorer on http://127.0.0.1:"), "{out}");
    let pid = pid_of(dir);
    // it answers, it refuses a second start, it logs
    assert_eq!(info(dir)["experiment_count"], 0);
    let (ok, _, err) = run(dir, &start_args());
    assert!(!ok && err.contains("already running"), "{err}");
    let lines = vector_lines();
    import_lines(dir, &lines[..5]);
    let (ok, log, _) = run(dir, &["log", "-n", "200"]);
    assert!(ok);
    assert!(log.contains("explorer on"), "{log}");
    assert!(log.contains("task manifest stored"), "{log}");

    let held = info(dir)["experiment_count"].clone();
    assert!(held.as_i64().unwrap() > 0);
    let (ok, out, err) = run(dir, &["stop"]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("stopped pid {pid}")), "{out}");
    assert!(!dir.join("spored.pid").exists());
    assert!(!dir.join("spored.sock").exists());
    assert!(
        std::fs::read_to_string(dir.join("spored.log"))
            .unwrap()
            .trim_end()
            .ends_with("stopped"),
        "a clean stop is logged last"
    );
    let (ok, _, err) = run(dir, &["stop"]);
    assert!(!ok && err.contains("no node"), "{err}");
    // SIGTERM lost nothing: the offline store holds every record the node held
    let (ok, out, err) = run(dir, &["--json", "info"]);
    assert!(ok, "{err}");
    let offline: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(offline["experiment_count"], held, "{out}");
}

#[test]
fn a_node_that_cannot_start_is_reported_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // a broken config is refused before anything starts
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.toml"), "prot = 1\n").unwrap();
    let (ok, _, err) = run(dir, &start_args());
    assert!(!ok && err.contains("prot"), "{err}");
    std::fs::remove_file(dir.join("config.toml")).unwrap();
    // a port in use: the node exits during start, and `start` says why
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let mut args = start_args();
    let at = args.iter().position(|a| *a == "--port").unwrap();
    args[at + 1] = &port;
    let (ok, _, err) = run(dir, &args);
    assert!(!ok, "{err}");
    assert!(err.contains("exited during start"), "{err}");
    assert!(err.contains("cannot listen for reference peers"), "{err}");
    assert!(!dir.join("spored.pid").exists());
}

fn signal(pid: u32, sig: &str) {
    assert!(std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

fn log_text(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("spored.log")).unwrap()
}

#[test]
fn sighup_reloads_peers_and_log_level_and_sigusr2_restarts_with_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ok, _, err) = run(dir, &start_args());
    let _guard = support::StopOnDrop(dir.to_path_buf());
    assert!(ok, "{err}");
    let pid = pid_of(dir);
    let lines = vector_lines();
    import_lines(dir, &lines[..6]);

    // a new peer and a quieter log, from the file, without a restart
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let peer = listener.local_addr().unwrap().to_string();
    std::fs::write(
        dir.join("config.toml"),
        format!("peer = [\"{peer}\"]\nlog_level = \"warn\"\n"),
    )
    .unwrap();
    signal(pid, "-HUP");
    support::wait_until("the node to dial the peer added by SIGHUP", 20, || {
        listener.accept().is_ok()
    });
    let quiet_from = log_text(dir).len();
    import_lines(dir, &lines[6..12]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !log_text(dir)[quiet_from..].contains(" INFO "),
        "log_level = warn silenced INFO"
    );
    // and louder again
    std::fs::write(
        dir.join("config.toml"),
        "log_level = \"info,spore_actors=debug\"\n",
    )
    .unwrap();
    signal(pid, "-HUP");
    support::wait_until("the node to log at debug", 20, || {
        import_lines(dir, &lines[12..13]);
        log_text(dir)[quiet_from..].contains("DEBUG")
    });
    let before = info(dir)["experiment_count"].clone();

    // SIGUSR2: the same process image again, with the same arguments and store
    let restarted_from = log_text(dir).len();
    signal(pid, "-USR2");
    support::wait_until("the restarted node", 30, || {
        let text = log_text(dir);
        text[restarted_from..].contains("explorer on") && dir.join("spored.sock").exists()
    });
    assert_eq!(info(dir)["experiment_count"], before, "nothing lost");
    let again = pid_of(dir);
    assert_eq!(again, pid, "the same process, re-executed");
    let (ok, out, err) = run(dir, &["stop"]);
    assert!(ok && out.starts_with("stopped"), "{err}");
}

#[test]
fn the_background_log_is_json_on_request_rotates_by_size_and_log_follow_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("config.toml"),
        "log_format = \"json\"\nlog_max_mb = 1\nlog_level = \"info\"\n",
    )
    .unwrap();
    let (ok, _, err) = run(dir, &start_args());
    let _guard = support::StopOnDrop(dir.to_path_buf());
    assert!(ok, "{err}");
    let pid = pid_of(dir);
    // log lines are JSON objects (the lines a person reads, on stdout, stay text)
    let text = log_text(dir);
    let event = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON log line in {text}"));
    let event: serde_json::Value = serde_json::from_str(event).unwrap();
    assert!(
        event["level"].is_string() && event["fields"].is_object(),
        "{event}"
    );

    // `spored log -f` from before the rotation
    let mut follow = spored(dir)
        .args(["log", "-f", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, followed) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // the log passes its size limit (appended here, as a long-running node would)
    {
        use std::io::Write as _;
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("spored.log"))
            .unwrap();
        let filler = format!("{}\n", "x".repeat(1023));
        for _ in 0..1100 {
            log.write_all(filler.as_bytes()).unwrap();
        }
    }
    support::wait_until("the log to rotate", 20, || {
        dir.join("spored.log.1").exists()
    });
    assert!(std::fs::metadata(dir.join("spored.log.1")).unwrap().len() > 1 << 20);
    // what the node logs now goes to the new file, and the follower sees it
    signal(pid, "-HUP");
    support::wait_until("the reload logged in the new file", 20, || {
        log_text(dir).contains("config reloaded")
    });
    assert!(log_text(dir).len() < 64 * 1024, "the new file starts empty");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = followed
            .recv_timeout(left)
            .expect("`spored log -f` went on in the new file");
        if line.contains("config reloaded") {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
}
