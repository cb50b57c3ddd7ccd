//! The research side, end to end: the ExperimentRunner with real `spored train` children, and a
//! research-mode `spored run` that publishes a root and children in the built-in default task.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as J;
use spore_actors::default_task;

mod support;
use spore_actors::experiment_runner::{RunRequest, RunResult, Runner, RunnerConfig};
use spore_train::RunConfig;

fn runner(dir: &Path, program: &Path, grace: Option<Duration>) -> Runner {
    Runner::new(RunnerConfig {
        program: program.to_path_buf(),
        work_dir: dir.join("runs"),
        resource: 100,
        memory_limit_mb: 2048,
        device: "cpu".into(),
        eval_tokens: Some(2048),
        show_progress: false,
        grace,
        kernel_cache: None,
        slots: Vec::new(),
    })
}

fn run(runner: &Runner, config_bytes: Vec<u8>, budget: Duration) -> (RunResult, usize) {
    actix_rt::System::new().block_on(async {
        let mut progress = 0;
        let req = RunRequest {
            config_bytes,
            budget,
            steps: None,
            label: "test".into(),
            corpus: None,
            prepare: None,
        };
        let result = runner.run(&req, |_| progress += 1).await;
        (result, progress)
    })
}

fn tiny() -> RunConfig {
    let mut c = RunConfig::baseline();
    c.model.n_layer = 1;
    c.model.d_model = 32;
    c.model.n_head = 2;
    c.model.context = 32;
    c
}

#[test]
fn a_training_child_reports_metrics_and_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let r = runner(tmp.path(), Path::new(env!("CARGO_BIN_EXE_spored")), None);
    let (result, progress) = run(&r, tiny().to_bytes(), Duration::from_secs(2));
    assert!(result.success, "{}\n{}", result.error, result.output);
    assert!(result.error.is_empty());
    assert!(result.parsed.val_bpb > 0.5 && result.parsed.val_bpb < 8.5);
    assert!(result.parsed.num_steps > 5);
    assert_eq!(result.parsed.num_params, tiny().num_params());
    assert!(result.peak_rss_mb > 1.0, "{}", result.peak_rss_mb);
    assert!(progress >= 1, "no progress line was seen");
    // the config file written for the child is cleaned up
    assert_eq!(
        std::fs::read_dir(tmp.path().join("runs")).unwrap().count(),
        0
    );
}

#[test]
fn bad_configs_and_crashes_become_failures_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let r = runner(tmp.path(), Path::new(env!("CARGO_BIN_EXE_spored")), None);

    let (garbage, _) = run(
        &r,
        b"import os\nos.system('rm -rf /')\n".to_vec(),
        Duration::from_secs(2),
    );
    assert!(!garbage.success);
    // the child's own words are for the log and the console (`failure_text`); a record's
    // description gets only this node's (`error`), which quote nothing the config said
    assert!(
        garbage.failure_text().contains("not valid TOML"),
        "{}",
        garbage.failure_text()
    );
    assert!(!garbage.error.contains("rm -rf"), "{}", garbage.error);

    let mut negative = tiny();
    negative.train.lr = -1.0;
    let (neg, _) = run(&r, negative.to_bytes(), Duration::from_secs(2));
    assert!(
        neg.failure_text().contains("train.lr"),
        "{}",
        neg.failure_text()
    );

    let mut huge = tiny();
    huge.model.d_model = 4096;
    huge.model.n_layer = 48;
    huge.model.n_head = 32;
    let (big, _) = run(&r, huge.to_bytes(), Duration::from_secs(2));
    assert!(big.detail.starts_with("model cannot fit"), "{}", big.detail);

    // bf16 matrix products exist only on the GPU backend; the CPU refuses before training
    let mut half = tiny();
    half.train.precision = spore_train::config::Precision::Bf16;
    let (bf16, _) = run(&r, half.to_bytes(), Duration::from_secs(2));
    assert!(!bf16.success);
    assert!(
        bf16.detail.contains("needs a CUDA device"),
        "{}",
        bf16.detail
    );

    let decided = spore_actors::research::decide(&big, Some(3.0), spore_spec::Goal::Minimize);
    assert_eq!(decided, spore_spec::Status::Crash);
}

#[test]
fn a_hung_child_is_killed_after_budget_and_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("hang.sh");
    std::fs::write(&script, "#!/bin/sh\necho 'progress step=1 planned=9 loss=5.0 tok_s=1 elapsed=0.1 budget=1'\nexec sleep 60\n").unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    let r = runner(tmp.path(), &script, Some(Duration::from_secs(1)));
    let started = Instant::now();
    let (result, progress) = run(&r, tiny().to_bytes(), Duration::from_secs(1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!result.success);
    assert!(
        result.error.starts_with("killed: ran past"),
        "{}",
        result.error
    );
    assert_eq!(progress, 1);
}

/// Runs the node until it printed `n` experiment lines (bounded), then stops it.
fn research(dir: &Path, n: usize) -> Vec<String> {
    research_with(dir, n, &[])
}

fn research_with(dir: &Path, n: usize, extra: &[&str]) -> Vec<String> {
    let mut child = support::spored(dir)
        .args(support::LOOPBACK_RUN)
        .args(["--time-budget", "2"])
        .args(["--max-experiments", &n.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("experiment ") {
                let _ = tx.send(line);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut lines = Vec::new();
    while lines.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert_eq!(lines.len(), n, "experiments seen: {lines:?}");
    lines
}

#[test]
fn a_research_node_researches_the_default_task_from_its_pinned_root() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = research(tmp.path(), 3);
    // the root is pinned, not run: every experiment is a proposal of the built-in search
    assert!(lines.iter().all(|l| !l.contains("baseline")), "{lines:?}");

    let task_id = default_task::manifest().task_id;
    let out = spored(tmp.path(), &["export", "--task", &task_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<J> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let records: Vec<&J> = objects
        .iter()
        .filter(|o| o["type"] == "experiment")
        .map(|o| &o["payload"])
        .collect();
    assert!(
        objects.iter().any(|o| o["type"] == "task"),
        "the default task is exported"
    );
    assert_eq!(records.len(), 4);
    let roots: Vec<&&J> = records.iter().filter(|r| r["parent"].is_null()).collect();
    assert_eq!(roots.len(), 1, "exactly one root");
    assert_eq!(roots[0]["id"], default_task::ROOT_ID);
    assert_eq!(roots[0]["agent_model"], "baseline");
    assert_eq!(roots[0]["status"], "keep");
    let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for r in &records {
        assert_eq!(r["task_id"], task_id.as_str());
        assert_eq!(r["version"], 2);
        assert_eq!(r["torch_version"], "burn-0.21.0");
        assert!(r["gpu_model"].as_str().unwrap().starts_with("CPU_"));
        assert_eq!(r["dataset_cid"], spore_train::data::KJV_SHA256);
        if r["status"] != "crash" {
            assert!(r["val_bpb"].as_f64().unwrap() > 0.0, "{r}");
        }
        if !r["parent"].is_null() {
            assert!(ids.contains(&r["parent"].as_str().unwrap()));
            assert!(r["diff"]
                .as_str()
                .unwrap()
                .starts_with("--- config.toml\n+++ config.toml\n@@"));
            assert!(!r["hypothesis"].as_str().unwrap().is_empty());
            assert_eq!(r["agent_model"], "spored-search/1");
        }
    }
    let codes: std::collections::HashSet<&str> = records
        .iter()
        .map(|r| r["code_cid"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 4, "no config was run twice");
}

/// `spored ARGS` on the data dir `dir`, run to completion.
fn spored(dir: &Path, args: &[&str]) -> std::process::Output {
    support::spored(dir).args(args).output().unwrap()
}

#[test]
fn a_task_on_a_prepared_corpus_trains_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let small = dir.join("small.txt");
    std::fs::write(&small, "too short").unwrap();
    let out = spored(dir, &["prepare", "--text", small.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10,000"));

    let corpus = dir.join("corpus.txt");
    let text: String = (0..3000)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog.\n"))
        .collect();
    std::fs::write(&corpus, &text).unwrap();
    let out = spored(
        dir,
        &["--json", "prepare", "--text", corpus.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prepared: J = serde_json::from_slice(&out.stdout).unwrap();
    let dataset = prepared["dataset_cid"].as_str().unwrap().to_string();
    let mut bytes = text.into_bytes();
    bytes.push(b'\n');
    assert_eq!(dataset, spore_spec::crypto::sha256_hex(&bytes));

    let base = spore_spec::crypto::sha256_hex(&RunConfig::baseline().to_bytes());
    assert_eq!(prepared["base_code_cid"], base.as_str());
    let task_id = create_task(dir, "fox", &prepared);

    let lines = research_with(dir, 1, &["--task", &task_id]);
    assert!(lines[0].contains(" keep val_bpb="), "{lines:?}");
    let root = exported_root(dir, &task_id);
    assert_eq!(root["payload"]["dataset_cid"], dataset.as_str());
    assert_eq!(root["payload"]["task_id"], task_id.as_str());
    // it learned something: below the ~8 bits of an untrained model, even in a 2 s budget
    assert!(root["payload"]["val_bpb"].as_f64().unwrap() < 6.0, "{root}");
}

/// The first experiment `spored export` lists for a task (its root).
fn exported_root(dir: &Path, task_id: &str) -> J {
    let out = spored(dir, &["export", "--task", task_id]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<J>(l).unwrap())
        .find(|o| o["type"] == "experiment")
        .expect("an exported experiment")
}

/// `spored task create` for a corpus `spored prepare --json` described; the task's id.
fn create_task(dir: &Path, name: &str, prepared: &J) -> String {
    let field = |k: &str| prepared[k].as_str().unwrap().to_string();
    let out = spored(
        dir,
        &[
            "--json",
            "task",
            "create",
            "--name",
            name,
            "--artifact-type",
            "spore_gpt_config",
            "--dataset-cid",
            &field("dataset_cid"),
            "--prepare-cid",
            &field("prepare_cid"),
            "--base-code-cid",
            &field("base_code_cid"),
            "--time-budget",
            "60",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task: J = serde_json::from_slice(&out.stdout).unwrap();
    task["task_id"].as_str().unwrap().to_string()
}

#[test]
fn a_bpe_task_learns_its_tokenizer_and_trains_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let corpus = dir.join("corpus.txt");
    let kjv = spore_train::data::builtin_corpus();
    std::fs::write(&corpus, &kjv[..200_000]).unwrap();
    let path = corpus.to_str().unwrap();

    let out = spored(dir, &["prepare", "--text", path, "--bpe", "100"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("257–65536 tokens, not 100"));
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, [b"caf\xe9 ".repeat(3000)].concat()).unwrap();
    let out = spored(
        dir,
        &[
            "prepare",
            "--text",
            latin1.to_str().unwrap(),
            "--bpe",
            "512",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid UTF-8 at byte 3"));

    let out = spored(dir, &["--json", "prepare", "--text", path, "--bpe", "512"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prepared: J = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(prepared["vocab_size"], 512);
    // About 2 bytes per token at this vocabulary size, against 1 for bytes.
    let tokens =
        prepared["train_tokens"].as_u64().unwrap() + prepared["val_tokens"].as_u64().unwrap();
    assert!(tokens < 200_000 * 2 / 3, "{prepared}");
    let prepare_cid = prepared["prepare_cid"].as_str().unwrap();
    let document = std::fs::read(dir.join(format!("datasets/{prepare_cid}.prepare"))).unwrap();
    assert_eq!(spore_spec::crypto::sha256_hex(&document), prepare_cid);
    let dataset = prepared["dataset_cid"].as_str().unwrap();
    let cache = dir.join(format!("datasets/{dataset}.{prepare_cid}.tokens"));
    assert!(cache.exists(), "the runs read the tokens prepare made");
    let mut base = RunConfig::baseline();
    base.model.vocab_size = 512;
    assert_eq!(
        prepared["base_code_cid"],
        spore_spec::crypto::sha256_hex(&base.to_bytes()).as_str()
    );

    let task_id = create_task(dir, "kjv-bpe", &prepared);
    let lines = research_with(dir, 1, &["--task", &task_id]);
    assert!(lines[0].contains(" keep val_bpb="), "{lines:?}");
    let root = exported_root(dir, &task_id);
    assert_eq!(root["payload"]["prepare_cid"], prepare_cid);
    assert_eq!(root["payload"]["num_params"], base.num_params());
    // Bits per byte, not per token: an untrained 512-token model scores 9 bits per token,
    // ~4.5 per byte; two seconds of training must beat that.
    assert!(root["payload"]["val_bpb"].as_f64().unwrap() < 4.5, "{root}");
}

/// A Parquet file with a `text` column (one value per document, one null) and an id column,
/// zstd-compressed like the reference's climbmix shards.
fn write_parquet(path: &Path, docs: &[Option<String>]) {
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let schema = parquet::schema::parser::parse_message_type(
        "message doc { OPTIONAL BYTE_ARRAY text (UTF8); REQUIRED INT64 id; }",
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let values: Vec<ByteArray> = docs
        .iter()
        .flatten()
        .map(|d| ByteArray::from(d.as_str()))
        .collect();
    let levels: Vec<i16> = docs.iter().map(|d| i16::from(d.is_some())).collect();
    let mut text = group.next_column().unwrap().unwrap();
    text.typed::<ByteArrayType>()
        .write_batch(&values, Some(&levels), None)
        .unwrap();
    text.close().unwrap();
    let ids: Vec<i64> = (0..docs.len() as i64).collect();
    let mut id = group.next_column().unwrap().unwrap();
    id.typed::<Int64Type>()
        .write_batch(&ids, None, None)
        .unwrap();
    id.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn a_parquet_corpus_is_prepared_from_its_text_column() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut docs: Vec<Option<String>> = (0..400)
        .map(|i| {
            Some(format!(
                "document {i}: in the beginning was the word, and the word was text."
            ))
        })
        .collect();
    docs[7] = None; // a null is skipped
    let shard = dir.join("shard_00000.parquet");
    write_parquet(&shard, &docs);
    let out = spored(
        dir,
        &["--json", "prepare", "--parquet", shard.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prepared: J = serde_json::from_slice(&out.stdout).unwrap();
    let expected: String = docs.iter().flatten().map(|d| format!("{d}\n")).collect();
    assert_eq!(
        prepared["dataset_cid"],
        spore_spec::crypto::sha256_hex(expected.as_bytes()),
        "the dataset is the column's values, one per line, in file order"
    );
    let stored = std::fs::read(prepared["path"].as_str().unwrap()).unwrap();
    assert_eq!(stored, expected.as_bytes());

    // another column name, a column that is not text, a file that is not Parquet: clear errors
    let missing = spored(
        dir,
        &[
            "prepare",
            "--parquet",
            shard.to_str().unwrap(),
            "--column",
            "body",
        ],
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("no column \"body\"") && err.contains("text, id"),
        "{err}"
    );
    let numbers = spored(
        dir,
        &[
            "prepare",
            "--parquet",
            shard.to_str().unwrap(),
            "--column",
            "id",
        ],
    );
    assert!(String::from_utf8_lossy(&numbers.stderr).contains("not text"));
    let fake = dir.join("fake.parquet");
    std::fs::write(&fake, "PAR1 this is not parquet").unwrap();
    let bad = spored(dir, &["prepare", "--parquet", fake.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a readable Parquet file"));
}

/// The moment a stop signal reaches the node's process group.
#[derive(Clone, Copy, Debug)]
enum StopAt {
    /// As soon as the training child exists (it may not have read its config yet).
    ChildStart,
    /// While the child trains (it has used a second of CPU).
    Training,
}

/// The training children (`spored train`) of process `parent`.
fn training_children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // fields after the command name (which may hold spaces): state, ppid, …
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ppid = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(parent) && cmdline.split(|b| *b == 0).any(|a| a == b"train") {
            found.push(pid);
        }
    }
    found
}

/// CPU seconds process `pid` has used (0 when it is gone).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// A stop signal sent to the whole process group (as a terminal's Ctrl-C, `timeout` or a
/// service manager does) while an experiment runs must not become a `crash` record: the node
/// stops, its training child with it, and nothing about the experiment is signed or published.
#[test]
fn a_stop_signal_to_the_process_group_mid_experiment_publishes_nothing() {
    use std::os::unix::process::CommandExt as _;
    for (stop_at, signal) in [
        (StopAt::ChildStart, "-TERM"),
        (StopAt::Training, "-TERM"),
        (StopAt::Training, "-INT"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let log = std::fs::File::create(dir.join("node.log")).unwrap();
        let mut node = support::spored(dir)
            .args(support::LOOPBACK_RUN)
            .args(["--time-budget", "60"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .unwrap();
        let (_, web) = support::addresses(&mut node);
        // a browser on the live stream: the explorer then takes up to 2 s to stop, a window in
        // which a node that took the child's death for a crash would store and send its record
        let mut live = std::net::TcpStream::connect(web.trim_start_matches("http://")).unwrap();
        std::io::Write::write_all(&mut live, b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let pid = node.id();
        let mut child = 0;
        support::wait_until("the training child starts", 60, || {
            child = training_children(pid).first().copied().unwrap_or(0);
            child != 0
        });
        if let StopAt::Training = stop_at {
            support::wait_until("the child trains", 60, || cpu_seconds(child) >= 1.0);
        }
        let sent = Command::new("kill")
            .args([signal, "--", &format!("-{pid}")])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = node.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the node did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(live);
        let log = std::fs::read_to_string(dir.join("node.log")).unwrap();
        assert!(status.success(), "{stop_at:?} {signal}: {status}\n{log}");
        support::wait_until("the training child is gone", 10, || gone(child));
        // nothing about the experiment: no record stored or sent, no new proposal after the stop
        let out = support::spored(dir)
            .args(["--json", "status"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status: J = serde_json::from_slice(&out.stdout).unwrap();
        // the default task's pinned root is all there is (stored before the first experiment)
        assert_eq!(
            status["experiment_count"], 1,
            "{stop_at:?} {signal}: {status}\n{log}"
        );
        assert_eq!(status["recent"][0]["id"], default_task::ROOT_ID);
        assert!(!log.contains("crash"), "{stop_at:?} {signal}:\n{log}");
        let stopping = log
            .find("stopping")
            .unwrap_or_else(|| panic!("{stop_at:?} {signal}: no stop in the log\n{log}"));
        assert!(
            !log[stopping..].contains("research: ")
                || log[stopping..].contains("research: stopped"),
            "{stop_at:?} {signal}: research went on after the stop\n{log}"
        );
        assert!(
            !log[stopping..].contains("research: running")
                && !log[stopping..].contains("proposing"),
            "{stop_at:?} {signal}:\n{log}"
        );
    }
}
