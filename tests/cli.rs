//! End-to-end tests of the `spored` binary: real processes, real data dirs, real redb files.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as J;
use support::vectors;

mod support;

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        Node {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("spore")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spored"));
        cmd.arg("--data-dir").arg(self.path()).args(args);
        cmd.env_remove("SPORE_HOME").env("HOME", self.dir.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "spored {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure (never a panic); returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "spored {args:?} should fail");
        // 1: the command failed; 2: clap refused the arguments; never 101 (a panic)
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "spored {args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    fn json(&self, args: &[&str]) -> J {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(self.ok(&all).trim()).unwrap()
    }

    fn experiment_count(&self) -> i64 {
        self.json(&["info"])["experiment_count"].as_i64().unwrap()
    }
}

/// The reference's signed vectors as one JSONL file of message envelopes.
fn vector_jsonl(dir: &Path) -> PathBuf {
    let path = dir.join("vectors.jsonl");
    std::fs::write(&path, support::vector_lines().join("\n") + "\n").unwrap();
    path
}

const TASK: &str = "3094a2dfd2296bef1d10bad5bd5636e6b84fe0b57c823b043cb6c98cf3fbb371";

#[test]
fn init_makes_a_private_key_config_and_store() {
    let node = Node::new();
    let out = node.ok(&["init"]);
    assert!(out.contains("Node ready. ID: "), "{out}");
    let key = node.path().join("identity/private_key");
    let seed = std::fs::read_to_string(&key).unwrap();
    assert_eq!(seed.len(), 64);
    assert!(seed.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(node.path().join("config.toml").exists());
    assert!(node.path().join("db/spored.redb").exists());
    let dir_mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode(&node.path()), 0o700, "the data dir is private");
    // a data dir made readable by others is tightened again
    std::fs::set_permissions(node.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    node.ok(&["init"]);
    assert_eq!(dir_mode(&node.path()), 0o700);
    // a directory that is not a data dir keeps its mode
    let other = node.dir.path().join("shared");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "not spored's").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spored"))
        .arg("--data-dir")
        .arg(&other)
        .arg("init")
        .env("HOME", node.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dir_mode(&other), 0o755);
    // idempotent: same identity the second time
    let node_id = std::fs::read_to_string(node.path().join("identity/node_id")).unwrap();
    node.ok(&["init"]);
    assert_eq!(node.json(&["info"])["node_id"], node_id.as_str());
}

#[test]
fn a_reference_seed_file_gives_the_reference_node_id() {
    let node = Node::new();
    let keys = vectors("keys.json");
    let a = &keys["keys"]["A"];
    std::fs::create_dir_all(node.path().join("identity")).unwrap();
    std::fs::write(
        node.path().join("identity/private_key"),
        a["private_key_file_contents"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(node.json(&["info"])["node_id"], a["node_id"]);
    // a world-readable key left by the reference is tightened
    let mode = std::fs::metadata(node.path().join("identity/private_key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn data_dir_precedence_flag_then_spore_home_then_home() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let spore_home = tmp.path().join("sporehome");
    let flag = tmp.path().join("flag");
    let run = |extra: &[&str], spore_home_env: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spored"));
        cmd.args(extra)
            .arg("init")
            .env("HOME", &home)
            .env_remove("SPORE_HOME");
        if let Some(p) = spore_home_env {
            cmd.env("SPORE_HOME", p);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&[], None).contains(&home.join(".spore").display().to_string()));
    assert!(run(&[], Some(&spore_home)).contains(&spore_home.display().to_string()));
    let out = run(&["--data-dir", flag.to_str().unwrap()], Some(&spore_home));
    assert!(out.contains(&flag.display().to_string()), "{out}");
    assert!(flag.join("identity/private_key").exists());
}

#[test]
fn every_run_flag_lands_in_the_dumped_config() {
    let node = Node::new();
    let dump = node.ok(&[
        "run",
        "--dump-config",
        "--host",
        "127.0.0.1",
        "--port",
        "7999",
        "--p2p-port",
        "7998",
        "--no-legacy-listen",
        "--no-bootstrap",
        "--peer",
        "127.0.0.1:7470",
        "--peer",
        "/ip4/127.0.0.1/tcp/4001",
        "--task",
        "abcd",
        "--web-host",
        "127.0.0.2",
        "--web-port",
        "8999",
        "--resource",
        "40",
        "--mdns",
        "--auto-update",
        "--verify-only",
        "--time-budget",
        "7",
        "--max-experiments",
        "3",
    ]);
    let c: toml::Table = toml::from_str(&dump).unwrap();
    assert_eq!(c["host"].as_str(), Some("127.0.0.1"));
    assert_eq!(c["port"].as_integer(), Some(7999));
    assert_eq!(c["p2p_port"].as_integer(), Some(7998));
    assert_eq!(c["legacy_listen"].as_bool(), Some(false));
    assert_eq!(c["bootstrap"].as_array().map(|a| a.len()), Some(0));
    assert_eq!(
        c["peer"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect::<Vec<_>>(),
        ["127.0.0.1:7470", "/ip4/127.0.0.1/tcp/4001"]
    );
    assert_eq!(c["task_id"].as_str(), Some("abcd"));
    assert_eq!(c["web_host"].as_str(), Some("127.0.0.2"));
    assert_eq!(c["web_port"].as_integer(), Some(8999));
    assert_eq!(c["resource"].as_integer(), Some(40));
    assert_eq!(c["mdns"].as_bool(), Some(true));
    assert_eq!(c["auto_update"].as_bool(), Some(true));
    assert_eq!(c["mode"].as_str(), Some("verify-only"));
    assert_eq!(c["time_budget"].as_integer(), Some(7));
    assert_eq!(c["max_experiments"].as_integer(), Some(3));

    let relay: toml::Table =
        toml::from_str(&node.ok(&["run", "--dump-config", "--no-train"])).unwrap();
    assert_eq!(relay["mode"].as_str(), Some("relay"));
    // by default: the reference's port and bootstrap peer, libp2p beside it
    assert_eq!(relay["port"].as_integer(), Some(7470));
    assert_eq!(relay["p2p_port"].as_integer(), Some(7471));
    assert_eq!(relay["legacy_listen"].as_bool(), Some(true));
    assert_eq!(
        relay["bootstrap"].as_array().unwrap()[0].as_str(),
        Some("peer.sporemesh.com:7470")
    );
    let by_mode: toml::Table = toml::from_str(&node.ok(&[
        "run",
        "--dump-config",
        "--mode",
        "relay",
        "--no-auto-update",
    ]))
    .unwrap();
    assert_eq!(by_mode["mode"].as_str(), Some("relay"));
    assert_eq!(by_mode["auto_update"].as_bool(), Some(false));
    // flags beat the file, the file beats the defaults
    std::fs::create_dir_all(node.path()).unwrap();
    std::fs::write(
        node.path().join("config.toml"),
        "port = 7001\nmode = \"verify-only\"\n",
    )
    .unwrap();
    let c: toml::Table =
        toml::from_str(&node.ok(&["run", "--dump-config", "--port", "7002"])).unwrap();
    assert_eq!(c["port"].as_integer(), Some(7002));
    assert_eq!(c["mode"].as_str(), Some("verify-only"));
    assert!(node
        .fails(&["run", "--dump-config", "--resource", "0"])
        .contains("resource"));
}

#[test]
fn example_configs_load_with_the_mode_they_name() {
    let node = Node::new();
    for (file, mode) in [
        ("research.toml", "research"),
        ("verify-only.toml", "verify-only"),
        ("relay.toml", "relay"),
    ] {
        let path = format!("{}/config/{file}", env!("CARGO_MANIFEST_DIR"));
        let c: toml::Table =
            toml::from_str(&node.ok(&["--config", &path, "run", "--dump-config"])).unwrap();
        assert_eq!(c["mode"].as_str(), Some(mode), "{file}");
    }
}

#[test]
fn a_broken_config_is_a_clear_error() {
    let node = Node::new();
    node.ok(&["init"]);
    let config = node.path().join("config.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}prot = 7470\n")).unwrap();
    let err = node.fails(&["info"]);
    assert!(err.contains("prot") && err.contains("config.toml"), "{err}");
    std::fs::write(&config, "port = \"seventy\"\n").unwrap();
    assert!(node.fails(&["info"]).contains("port"));
    std::fs::write(&config, "port = [\n").unwrap();
    node.fails(&["info"]);
    let missing = node.fails(&["--config", "/nonexistent/spored.toml", "info"]);
    assert!(missing.contains("does not exist"), "{missing}");
    // the reference's own config format loads
    std::fs::write(
        &config,
        "host = \"0.0.0.0\"\nport = 7470\npeer = ['127.0.0.1:7471']\ntask_id = \"\"\nauto_update = true\n\
         update_interval_sec = 21600\nupdate_manifest_url = \"https://example.invalid/m.json\"\ndata_dir = \"/x\"\n",
    )
    .unwrap();
    node.ok(&["info"]);
}

#[test]
fn tasks_are_created_listed_shown_and_pinned() {
    let node = Node::new();
    let out = node.ok(&[
        "task",
        "create",
        "--name",
        "tiny-gpt",
        "--metric",
        "val_bpb",
        "--time-budget",
        "60",
    ]);
    let task_id = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("Created task ")
        .unwrap()
        .to_string();
    assert!(out.contains("Pinned"), "{out}");
    assert_eq!(task_id.len(), 64);
    let list = node.json(&["tasks"]);
    assert_eq!(list[0]["task_id"], task_id.as_str());
    assert_eq!(list[0]["is_active"], true);
    let shown = node.json(&["task", "show", &task_id[..10]]);
    assert_eq!(shown["name"], "tiny-gpt");
    assert_eq!(shown["time_budget"], 60);
    // the stored manifest is signed by this node and verifies
    let exported = node.dir.path().join("task.jsonl");
    node.ok(&[
        "export",
        "--task",
        &task_id,
        "-o",
        exported.to_str().unwrap(),
    ]);
    // the manifest and its base config (the built-in baseline, stored with it)
    let verified = node.ok(&["verify", exported.to_str().unwrap()]);
    assert!(
        verified.contains(&format!(": task_manifest {task_id} valid")),
        "{verified}"
    );
    let err = node.fails(&["task", "show", "ffffffff"]);
    assert!(err.contains("unknown task id \"ffffffff\""), "{err}");
    assert!(node
        .fails(&["task", "use", "nope"])
        .contains("unknown task id"));
    assert!(node
        .fails(&["status", "--task", "nope"])
        .contains("unknown task id"));
    assert!(node
        .fails(&["frontier", "--task", "0000"])
        .contains("unknown task id"));
}

#[test]
fn warmup_prepares_the_task_the_node_would_research() {
    let node = Node::new();
    // without a GPU the build drives that is said plainly, not an error; with one, it prepares
    let out = node.ok(&["warmup"]);
    assert!(
        out.starts_with("No GPU kernels to prepare: ") || out.contains("Ready: the GPU kernels"),
        "{out}"
    );
    // the same preparing run on the CPU: the default task, its start's stages in order
    let out = node.ok(&["warmup", "--device", "cpu"]);
    let default_task = "019864f258ca2c6380c381d74e681c38f0d8e8dccef80fdba32f81467f21ffbe";
    assert!(
        out.starts_with(&format!("Preparing task {default_task} (kjv-gpt-cpu)")),
        "{out}"
    );
    let stages: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("starting ("))
        .collect();
    assert_eq!(stages.len(), 4, "{out}");
    for (i, stage) in stages.iter().enumerate() {
        assert!(stage.starts_with(&format!("{}/4: ", i + 1)), "{out}");
    }
    assert!(stages[0].contains("reading the corpus"), "{out}");
    assert!(
        out.contains(&format!("Ready: task {default_task} starts on this CPU")),
        "{out}"
    );
    // a pinned task of the user's own is the one prepared
    let created = node.ok(&["task", "create", "--name", "mine", "--time-budget", "30"]);
    let task_id = created
        .lines()
        .next()
        .unwrap()
        .strip_prefix("Created task ")
        .unwrap();
    let got = node.json(&["warmup", "--device", "cpu"]);
    assert_eq!(got["task_id"], task_id, "{got}");
    // one named on the command line, by prefix
    let got = node.json(&["warmup", "--device", "cpu", "--task", &default_task[..12]]);
    assert_eq!(got["task_id"], default_task, "{got}");
    let err = node.fails(&["warmup", "--device", "cpu", "--task", "ffffffff"]);
    assert!(
        err.contains("ffffffff") && err.contains("not known"),
        "{err}"
    );
    assert!(node.fails(&["warmup", "--device", "tpu"]).contains("tpu"));
}

#[test]
fn import_then_status_frontier_graph_and_export_round_trip() {
    let node = Node::new();
    let file = vector_jsonl(node.dir.path());
    let out = node.ok(&["import", file.to_str().unwrap()]);
    assert!(out.contains("32 experiments (0 held"), "{out}");
    assert!(out.contains("4 tasks"), "{out}");
    let status = node.json(&["status", "--task", TASK]);
    assert_eq!(status["experiment_count"], 32);
    assert_eq!(status["best_val_bpb"], -2.5);
    let frontier = node.json(&["frontier", "--task", TASK]);
    assert_eq!(
        frontier.as_array().unwrap().len(),
        status["frontier_size"].as_u64().unwrap() as usize
    );
    let graph = node.ok(&["graph", "--task", TASK]);
    assert!(graph.starts_with("[+] e2536954"), "{graph}");
    assert_eq!(graph.lines().count(), 32);

    // export, import into a fresh node: the same frontier, the same bytes
    let exported = node.dir.path().join("export.jsonl");
    node.ok(&[
        "export",
        "--task",
        &TASK[..8],
        "--output",
        exported.to_str().unwrap(),
    ]);
    let other = Node::new();
    other.ok(&["import", exported.to_str().unwrap()]);
    assert_eq!(other.json(&["frontier", "--task", TASK]), frontier);
    other.ok(&[
        "export",
        "--task",
        TASK,
        "--output",
        other.dir.path().join("again.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&exported).unwrap(),
        std::fs::read(other.dir.path().join("again.jsonl")).unwrap()
    );
    // importing the same file again changes nothing
    let again = node.ok(&["import", file.to_str().unwrap()]);
    assert!(again.contains("already present"), "{again}");
    assert_eq!(node.experiment_count(), 32);
}

#[test]
fn a_forged_line_refuses_the_whole_import_and_changes_nothing() {
    let node = Node::new();
    let file = vector_jsonl(node.dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // tamper with one record's metric, keep its id and signature
    let victim = lines
        .iter()
        .position(|l| l.contains("\"description\":\"long diff\""))
        .unwrap();
    lines[victim] = lines[victim].replace("\"val_bpb\":0.997", "\"val_bpb\":0.5");
    let forged = node.dir.path().join("forged.jsonl");
    std::fs::write(&forged, lines.join("\n")).unwrap();
    let err = node.fails(&["import", forged.to_str().unwrap()]);
    assert!(err.contains(&format!("line {}", victim + 1)), "{err}");
    assert!(err.contains("id mismatch"), "{err}");
    assert!(err.contains("nothing was stored"), "{err}");
    assert_eq!(node.experiment_count(), 0);

    // a record whose parent lives in another task: refused, store unchanged
    node.ok(&["import", file.to_str().unwrap()]);
    let lineage = vectors("lineage.json");
    let cross: Vec<String> = lineage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .take(7)
        .map(|s| format!("{{\"type\":\"experiment\",\"payload\":{}}}", s["object"]))
        .collect();
    let cross_file = node.dir.path().join("cross.jsonl");
    std::fs::write(&cross_file, cross.join("\n")).unwrap();
    let err = node.fails(&["import", cross_file.to_str().unwrap()]);
    assert!(
        err.contains("second root") || err.contains("is in task"),
        "{err}"
    );
    assert_eq!(node.experiment_count(), 32);

    // garbage, binary junk, an empty file: errors, never panics, nothing stored
    for junk in [
        &b"not json at all\n"[..],
        &[0xff, 0x00, 0x13, 0x37][..],
        &b"{\"type\":\"experiment\",\"payload\":{}}\n"[..],
    ] {
        let path = node.dir.path().join("junk.jsonl");
        std::fs::write(&path, junk).unwrap();
        node.fails(&["import", path.to_str().unwrap()]);
    }
    assert_eq!(node.experiment_count(), 32);
    node.fails(&["import", "/nonexistent/file.jsonl"]);
}

#[test]
fn verify_names_kind_id_and_the_exact_reason() {
    let node = Node::new();
    let file = vector_jsonl(node.dir.path());
    let out = node.ok(&["verify", file.to_str().unwrap()]);
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" valid")).count(),
        46,
        "{out}"
    );
    assert!(
        out.contains("experiment e25369544ad6667b270de0dc05d0f3a"),
        "{out}"
    );
    // a bare object (not an envelope) works too
    let v = vectors("profiles.json");
    let bare = node.dir.path().join("profile.json");
    std::fs::write(
        &bare,
        v["vectors"][0]["wire"]["payload_json"].as_str().unwrap(),
    )
    .unwrap();
    assert!(node
        .ok(&["verify", bare.to_str().unwrap()])
        .contains("profile f0d45b6a"));
    // signature from another key
    let neg = vectors("negative.json");
    let case = neg["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "record_signature_from_other_key")
        .unwrap();
    let path = node.dir.path().join("bad.json");
    std::fs::write(&path, serde_json::to_string(&case["payload"]).unwrap()).unwrap();
    let out = node.run(&["verify", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("INVALID: invalid signature for signer 8a88e3dd"),
        "{stdout}"
    );
    let json = node.run(&["--json", "verify", path.to_str().unwrap()]);
    let line: J = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(line["valid"], false);
    assert_eq!(line["kind"], "experiment");
}

#[test]
fn profile_and_llm_settings() {
    let node = Node::new();
    node.ok(&[
        "profile",
        "set",
        "--display-name",
        "  Ada  ",
        "--bio",
        "trains tiny GPTs",
    ]);
    let p = node.json(&["profile", "show"]);
    assert_eq!(p["display_name"], "Ada");
    node.ok(&["profile", "set", "--display-name", "Ada L."]);
    assert_eq!(node.json(&["profile", "show"])["display_name"], "Ada L.");

    let out = node.ok(&["set", "groq", "gsk-1234567890abcdefWXYZ"]);
    assert!(out.contains("gsk-1234...WXYZ"), "{out}");
    assert!(!out.contains("567890abcdef"), "{out}");
    let llm = node.path().join("llm.toml");
    assert_eq!(
        std::fs::metadata(&llm).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // a key file others can read is tightened when it is read
    std::fs::set_permissions(&llm, std::fs::Permissions::from_mode(0o644)).unwrap();
    let shown = node.ok(&["set"]);
    assert_eq!(
        std::fs::metadata(&llm).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        shown.contains("Current: groq model moonshotai/kimi-k2-instruct-0905 key gsk-1234...WXYZ"),
        "{shown}"
    );
    assert!(node
        .fails(&["set", "nosuch", "k"])
        .contains("unknown provider"));
    assert!(node.fails(&["set", "custom", "k"]).contains("--base-url"));
}

#[test]
fn version_and_run_say_plainly_what_they_are() {
    use std::io::{BufRead as _, BufReader};
    let node = Node::new();
    assert!(node.ok(&["version"]).starts_with("spored "));
    // a verify-only node says what it is and starts its verifier
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(
        node.cmd(&support::LOOPBACK_RUN)
            .arg("--verify-only")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (out, err) = (
        child.0.stdout.take().unwrap(),
        child.0.stderr.take().unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(out) as Box<dyn std::io::Read + Send>,
        Box::new(err) as Box<dyn std::io::Read + Send>,
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let (mut mode, mut verifier) = (false, false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(mode && verifier) {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the node said its mode and started its verifier");
        mode |= line == "mode verify-only";
        verifier |= line.contains("verifier started");
        assert!(!line.contains("does not re-run"), "{line}");
    }
    // a second node on the same data dir is refused
    while !node.path().join("spored.sock").exists() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // exit status 75: held by another process, nothing wrong with this one (tried again later)
    let out = node.run(&support::LOOPBACK_RUN);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("already running"), "{err}");
    // SIGTERM stops it cleanly
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!node.path().join("spored.sock").exists());
}

#[test]
fn the_explorer_command_serves_a_data_dir_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    let node = Node::new();
    let file = vector_jsonl(node.dir.path());
    node.ok(&["import", file.to_str().unwrap()]);
    let mut child = node
        .cmd(&["explorer", "--web-port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let host = line
        .trim()
        .strip_prefix("explorer on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let get = |path: &str| support::http_get(&host, path);
    let (status, body) = get("/api/tasks");
    assert_eq!(status, 200, "{body}");
    let tasks: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(tasks.as_array().unwrap().len(), 4, "{body}");
    assert_eq!(get(&format!("/api/task/{}", "0".repeat(64))).0, 404);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "explorer ignored SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn the_config_table_in_the_docs_names_every_key_with_its_default() {
    let node = Node::new();
    let dumped: toml::Table = node.ok(&["run", "--dump-config"]).parse().unwrap();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let section = docs
        .split("## config.toml")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let mut documented = std::collections::BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let key = cells[0].trim_start_matches("| ").trim_matches('`');
        let default = cells[1].trim_matches('`');
        documented.insert(key.to_string(), default.to_string());
    }
    let keys: Vec<&String> = dumped.keys().collect();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        {
            let mut k = keys.clone();
            k.sort();
            k
        },
        "docs/operations.md's config table and `run --dump-config` name other keys"
    );
    for (key, value) in &dumped {
        if key == "data_dir" {
            continue; // where this test ran
        }
        let doc: toml::Table = format!("v = {}", documented[key])
            .parse()
            .unwrap_or_else(|e| panic!("the documented default of {key} is not TOML: {e}"));
        assert_eq!(&doc["v"], value, "the default of {key}");
    }
}

#[test]
fn the_example_systemd_unit_is_the_documented_one_with_its_hardening() {
    let root = env!("CARGO_MANIFEST_DIR");
    let unit = std::fs::read_to_string(format!("{root}/config/spored.service")).unwrap();
    let docs = std::fs::read_to_string(format!("{root}/docs/operations.md")).unwrap();
    for line in unit
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(docs.contains(line), "docs/operations.md lacks {line:?}");
    }
    for needed in [
        "Type=notify",
        "NotifyAccess=all",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=spored",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "MemoryMax=",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
}

#[test]
fn completions_and_the_man_page_are_generated_and_every_flag_has_help() {
    let node = Node::new();
    let bash = node.ok(&["completions", "bash"]);
    assert!(
        bash.contains("spored") && bash.contains("--data-dir"),
        "{bash}"
    );
    let man = node.ok(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH spored"),
        "{man}"
    );
    // every subcommand's every option says what it is for
    let top = node.ok(&["--help"]);
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() > 20, "{top}");
    for command in commands {
        let help = node.ok(&[command.as_str(), "--help"]);
        let mut lines = help.lines().peekable();
        while let Some(line) = lines.next() {
            let trimmed = line.trim_start();
            if !trimmed.starts_with('-') || trimmed.starts_with("-h,") || trimmed.starts_with("-V")
            {
                continue;
            }
            // help on the same line, or on the next line (long help)
            let same_line = trimmed.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            let next_line = lines
                .peek()
                .is_some_and(|n| n.starts_with("          ") && !n.trim().is_empty());
            assert!(
                same_line || next_line,
                "`spored {command}`: {line:?} has no help"
            );
        }
    }
}
