//! Signed self-update (issue #8): a `spored start` node follows a release manifest served over
//! HTTP on loopback (a small server in this test),
//! refuses a tampered manifest, a tampered binary, a downgrade and an unknown step, rolls back a
//! binary that fails its health check, and updates into a good one, keeping its store.
//!
//! The "newer" binaries are shell wrappers around this build: one sets
//! `SPORED_VERSION_OVERRIDE` (so it reports 9.9.0), one exits at once.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use support::{import_lines, info, spored, vector_lines, wait_until, LOOPBACK_RUN};

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = spored(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `spored release manifest` for `binary` (served at `<base>/<file name>`) as `version`.
fn manifest(rel: &Path, base: &str, binary: &Path, version: &str, steps: &[&str]) -> String {
    let mut args = vec![
        "release".to_string(),
        "manifest".into(),
        "--key".into(),
        rel.join("key").display().to_string(),
        "--binary".into(),
        binary.display().to_string(),
        "--url".into(),
        format!("{base}/{}", binary.file_name().unwrap().to_string_lossy()),
        "--version".into(),
        version.into(),
    ];
    for s in steps {
        args.push("--step".into());
        args.push(s.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(rel, &args)
}

/// A manifest `spored release` would refuse to make: signed with an unknown step.
fn manifest_with_unknown_step(rel: &Path, binary: &Path) -> String {
    use spore_spec::json::{object, to_canonical, to_wire, Value};
    let seed = std::fs::read_to_string(rel.join("key")).unwrap();
    let seed: [u8; 32] = spore_spec::crypto::from_hex(seed.trim())
        .unwrap()
        .try_into()
        .unwrap();
    let key = spore_spec::Identity::from_seed(seed);
    let platform = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let sha = spore_spec::crypto::sha256_hex(&std::fs::read(binary).unwrap());
    let mut members = vec![
        ("version".to_string(), Value::Str("9.9.5".into())),
        ("released_at".to_string(), Value::Int(1)),
        ("expires_at".to_string(), Value::Int(i64::MAX)),
        (
            "binaries".to_string(),
            Value::Object(vec![(
                platform,
                object([
                    ("url", Value::Str(format!("file://{}", binary.display()))),
                    ("sha256", Value::Str(sha)),
                ]),
            )]),
        ),
        (
            "steps".to_string(),
            Value::Array(vec![Value::Str("rm_rf_everything".into())]),
        ),
        ("key".to_string(), Value::Str(key.node_id())),
    ];
    let signature = key.sign_hex(to_canonical(&Value::Object(members.clone())).as_bytes());
    members.push(("signature".to_string(), Value::Str(signature)));
    to_wire(&Value::Object(members))
}

/// Serves the files of `root` over HTTP on 127.0.0.1 (GET only) for the life of the test;
/// returns its base URL.
fn serve(root: &Path) -> String {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = std::io::BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let mut stream = reader.into_inner();
            match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(body) => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(&body);
                }
                Err(_) => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    base
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("spored.log")).unwrap_or_default()
}

#[test]
fn a_node_updates_only_to_a_signed_healthy_release_and_keeps_its_store() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, rel) = (tmp.path().join("node"), tmp.path().join("release"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&rel).unwrap();
    let public = ok(
        &rel,
        &[
            "release",
            "keygen",
            "--out",
            rel.join("key").to_str().unwrap(),
        ],
    );
    let manifest_path = rel.join("manifest.json");
    let base = serve(&rel);
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "update_manifest_url = \"{base}/manifest.json\"\nrelease_keys = [\"{public}\"]\nupdate_interval_sec = 1\n"
        ),
    )
    .unwrap();
    let good = rel.join("spored-9.9.0");
    script(
        &good,
        &format!(
            "SPORED_VERSION_OVERRIDE=9.9.0 exec {} \"$@\"",
            env!("CARGO_BIN_EXE_spored")
        ),
    );
    // 1. a tampered manifest (signed for 9.9.0, edited to say 9.9.1)
    let signed = manifest(&rel, &base, &good, "9.9.0", &["backfill_tasks"]);
    std::fs::write(&manifest_path, signed.replace("9.9.0", "9.9.1")).unwrap();

    let mut start = LOOPBACK_RUN.to_vec();
    start[0] = "start";
    start.push("--no-train");
    // the node runs as under systemd with `Type=notify` and `NotifyAccess=all`: what it tells
    // the service manager is collected here
    let notify_path = tmp.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    std::thread::spawn({
        let told = told.clone();
        move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = notify.recv(&mut buf) {
                told.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    });
    let out = spored(&dir)
        .args(&start)
        .env("NOTIFY_SOCKET", &notify_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the node to tell systemd it is ready", 10, || {
        told.lock().unwrap().iter().any(|m| m.contains("READY=1"))
    });
    let _guard = support::StopOnDrop(dir.clone());
    let lines = vector_lines();
    import_lines(&dir, &lines[..8]);
    let stored = info(&dir)["experiment_count"].clone();
    let pid = std::fs::read_to_string(dir.join("spored.pid")).unwrap();
    wait_until("the tampered manifest refused", 20, || {
        log(&dir).contains("bad signature")
    });

    // 2. a tampered binary (the manifest is fine, the bytes are not)
    let tampered = rel.join("spored-9.9.3");
    script(&tampered, "exit 0");
    std::fs::write(
        &manifest_path,
        manifest(&rel, &base, &tampered, "9.9.3", &[]),
    )
    .unwrap();
    script(&tampered, "echo evil; exit 0");
    wait_until("the tampered binary refused", 20, || {
        log(&dir).contains("the binary hashes to")
    });
    // 3. a downgrade
    std::fs::write(&manifest_path, manifest(&rel, &base, &good, "0.0.1", &[])).unwrap();
    wait_until("the downgrade refused", 20, || {
        log(&dir).contains("downgrade from")
    });
    // 4. an unknown post-install step
    std::fs::write(&manifest_path, manifest_with_unknown_step(&rel, &good)).unwrap();
    wait_until("the unknown step refused", 20, || {
        log(&dir).contains("unknown post-install step")
    });
    assert_eq!(
        info(&dir)["version"],
        env!("CARGO_PKG_VERSION"),
        "still the old node"
    );

    // 5. a binary that fails its health check is rolled back
    let broken = rel.join("spored-9.9.2");
    script(&broken, "exit 3");
    std::fs::write(&manifest_path, manifest(&rel, &base, &broken, "9.9.2", &[])).unwrap();
    wait_until("the rollback", 60, || {
        log(&dir).contains("failed its health check here before")
    });
    assert!(log(&dir).contains("rolling back"));
    assert_eq!(info(&dir)["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info(&dir)["experiment_count"], stored);

    // 6. a good release: the node restarts into it and keeps its store
    std::fs::write(
        &manifest_path,
        manifest(&rel, &base, &good, "9.9.0", &["backfill_tasks"]),
    )
    .unwrap();
    let runs_new = || {
        dir.join("spored.sock").exists()
            && spored(&dir)
                .args(["--json", "info"])
                .output()
                .ok()
                .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
                .is_some_and(|v| v["version"] == "9.9.0")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !runs_new() {
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not come up as 9.9.0; its log:\n{}",
            log(&dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(
        info(&dir)["experiment_count"],
        stored,
        "the store came along"
    );
    wait_until("the pid file to name the new process", 10, || {
        std::fs::read_to_string(dir.join("spored.pid")).unwrap() != pid
    });
    // systemd follows the new process: the old one named it before it exited
    let new_pid = std::fs::read_to_string(dir.join("spored.pid")).unwrap();
    let main_pid = format!("MAINPID={}", new_pid.trim());
    wait_until("MAINPID of the new process sent to systemd", 10, || {
        told.lock().unwrap().iter().any(|m| m.contains(&main_pid))
    });
    assert!(log(&dir).contains("post-install steps"));
    // a later start (systemd, `spored start`) of the installed binary keeps the update
    ok(&dir, &["stop"]);
    ok(&dir, &start);
    assert_eq!(info(&dir)["version"], "9.9.0");
    assert_eq!(info(&dir)["experiment_count"], stored);
}
