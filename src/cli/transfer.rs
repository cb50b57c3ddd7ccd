//! `spored export` and `spored import`: a task as JSONL, one message envelope per line (the
//! same bytes a peer would send), so an export is also a replay of the task.

// A command without a running node opens the store itself; with one, it asks the node.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read};
use std::path::PathBuf;
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, Result};
use spore_actors::ingest::{check_message, check_object, Checked};
use spore_actors::store::{
    ControlOutcome, ExperimentOutcome, ProfileOutcome, StoreError, TaskOutcome,
};
use spore_actors::Writer;
use spore_spec::json::{object, Value};
use spore_spec::object::SignedObject;
use spore_spec::wire::Message;

use super::Context;
use crate::data_dir::write_atomically;
use crate::output::print_json;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Task id or unique prefix (default: the active task)
    #[arg(long)]
    pub task: Option<String>,
    /// Write here instead of stdout
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// JSONL file ('-' reads stdin)
    pub file: PathBuf,
    /// Also print time, rate and peak memory
    #[arg(long)]
    pub stats: bool,
}

pub fn export(ctx: &Context, args: ExportArgs) -> Result<()> {
    let v = ctx.query(
        "export",
        vec![("task", crate::query::opt(args.task.as_deref()))],
    )?;
    let task_id = crate::output::field::s(&v, "task_id").to_string();
    let lines: Vec<&str> = crate::output::field::list(&v, "lines")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut text = lines.join("\n");
    text.push('\n');
    match &args.output {
        Some(path) => {
            write_atomically(path, text.as_bytes(), 0o644)?;
            eprintln!(
                "Exported {} lines of task {} to {}",
                lines.len(),
                task_id,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

type Batch = Vec<(usize, Vec<u8>)>;
type CheckedBatch = Vec<(usize, Result<Checked, String>)>;

/// One line of an import: a message envelope (the bytes a peer sends) or a bare signed object.
fn check_line(bytes: &[u8]) -> Result<Checked, String> {
    let checked = match Message::decode_body(bytes) {
        Ok(Some(message)) => check_message(message),
        // not an envelope: a bare signed object
        Ok(None) | Err(_) => check_object(SignedObject::parse(bytes).map_err(|e| e.to_string())?),
    };
    checked.map_err(|e| e.to_string())
}

#[derive(Default)]
struct ImportReport {
    experiments: u64,
    held: u64,
    tasks: u64,
    control_events: u64,
    profiles: u64,
    artifacts: u64,
    already_present: u64,
    lines: u64,
    problems: Vec<String>,
}

impl ImportReport {
    /// Counts what storing records did (each with its outcome), for line `line`.
    fn count(
        &mut self,
        line: usize,
        inserted: Vec<(spore_spec::ExperimentRecord, ExperimentOutcome)>,
    ) {
        for (record, outcome) in inserted {
            match outcome {
                ExperimentOutcome::Accepted { .. } => self.experiments += 1,
                ExperimentOutcome::Held { .. } => self.held += 1,
                ExperimentOutcome::Duplicate => self.already_present += 1,
                ExperimentOutcome::Rejected(reason) => self
                    .problems
                    .push(format!("line {line}: experiment {}: {reason}", record.id)),
            }
        }
    }

    fn apply(
        &mut self,
        w: &mut Writer<'_>,
        line: usize,
        checked: Checked,
    ) -> Result<(), StoreError> {
        self.lines += 1;
        let object = match checked {
            Checked::Object(object) => *object,
            Checked::Artifact { cid, bytes: code } => {
                match w.put_artifact(&cid, &code) {
                    Ok(true) => self.artifacts += 1,
                    Ok(false) => self.already_present += 1,
                    Err(
                        e @ (StoreError::ArtifactMismatch { .. } | StoreError::ArtifactTooLarge(_)),
                    ) => self.problems.push(format!("line {line}: artifact: {e}")),
                    Err(e) => return Err(e),
                }
                return Ok(());
            }
        };
        match object {
            SignedObject::Experiment(record) => {
                let id = record.id.clone();
                let inserted = match w.insert_experiment(record) {
                    Ok(inserted) => inserted,
                    // no room to hold it for its parent: this record only, nothing was written
                    Err(e @ (StoreError::HeldPoolFull(_) | StoreError::HeldQuotaFull { .. })) => {
                        self.problems
                            .push(format!("line {line}: experiment {id}: {e}"));
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                };
                self.count(line, inserted);
            }
            SignedObject::Task(manifest) => match w.insert_manifest(&manifest)? {
                TaskOutcome::Accepted => {
                    self.tasks += 1;
                    // roots that waited for the manifest to tell whether they count
                    let released = w.release_held_roots(&manifest.task_id)?;
                    self.count(line, released);
                }
                TaskOutcome::Duplicate => self.already_present += 1,
            },
            SignedObject::Control(event) => match w.insert_control_event(&event)? {
                ControlOutcome::Accepted => self.control_events += 1,
                ControlOutcome::Duplicate
                | ControlOutcome::DuplicateEventId { .. }
                | ControlOutcome::DuplicateVote { .. } => self.already_present += 1,
                ControlOutcome::Refused(why) => self.problems.push(format!(
                    "line {line}: {} {}: {why}",
                    event.event_type, event.id
                )),
                ControlOutcome::Crowded { record } => self.problems.push(format!(
                    "line {line}: {} {}: record {record} already has the most challenges, responses and disputes kept",
                    event.event_type, event.id
                )),
            },
            SignedObject::Profile(profile) => match w.insert_profile(&profile)? {
                ProfileOutcome::Accepted => self.profiles += 1,
                ProfileOutcome::Duplicate | ProfileOutcome::Stale => self.already_present += 1,
            },
        }
        Ok(())
    }
}

const BATCH_LINES: usize = 256;

/// Reads lines into batches (reader thread), decodes and verifies them on every core (worker
/// threads), and applies them in file order inside one write transaction (this thread): the
/// import is stored whole or not at all.
pub fn import(ctx: &Context, args: ImportArgs) -> Result<()> {
    let started = Instant::now();
    let store = match spore_actors::Store::open_for_bulk(&ctx.data_dir.store()) {
        Ok(store) => store,
        Err(StoreError::InUse { .. }) => return import_into_running_node(ctx, &args),
        Err(e) => return Err(e).context("opening the store"),
    };
    let input: Box<dyn Read + Send> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("reading {}", args.file.display()))?,
        )
    };
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let (batch_tx, batch_rx) = mpsc::sync_channel::<(usize, Batch)>(workers * 8);
    let batch_rx = Mutex::new(batch_rx);
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, CheckedBatch)>(workers * 8);
    let mut report = ImportReport::default();

    let outcome: Result<(), StoreError> = std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> std::io::Result<()> {
            let mut input = BufReader::with_capacity(1 << 20, input);
            let mut batch = Vec::with_capacity(BATCH_LINES);
            let mut index = 0;
            for line_no in 1.. {
                let mut line = Vec::new();
                if input.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                batch.push((line_no, line));
                if batch.len() == BATCH_LINES {
                    if batch_tx.send((index, std::mem::take(&mut batch))).is_err() {
                        return Ok(());
                    }
                    index += 1;
                }
            }
            if !batch.is_empty() {
                let _ = batch_tx.send((index, batch));
            }
            Ok(())
        });
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let batch_rx = &batch_rx;
            scope.spawn(move || loop {
                let next = batch_rx.lock().expect("no worker panics holding it").recv();
                let Ok((index, batch)) = next else { return };
                let checked = batch
                    .into_iter()
                    .map(|(line, bytes)| (line, check_line(&bytes)))
                    .collect();
                if done_tx.send((index, checked)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let result = store.write(|w| {
            let mut pending: BTreeMap<usize, CheckedBatch> = BTreeMap::new();
            let mut next = 0;
            for (index, batch) in done_rx.iter() {
                pending.insert(index, batch);
                while let Some(batch) = pending.remove(&next) {
                    next += 1;
                    for (line, checked) in batch {
                        match checked {
                            Ok(c) => report.apply(w, line, c)?,
                            Err(reason) => report.problems.push(format!("line {line}: {reason}")),
                        }
                    }
                }
            }
            if report.problems.is_empty() {
                Ok(())
            } else {
                Err(StoreError::Aborted("import refused".into()))
            }
        });
        match reader.join().expect("the reader thread does not panic") {
            Ok(()) => result,
            Err(e) => Err(StoreError::Aborted(format!(
                "reading {}: {e}",
                args.file.display()
            ))),
        }
    });

    let elapsed = started.elapsed().as_secs_f64();
    if !report.problems.is_empty() {
        for problem in report.problems.iter().take(20) {
            eprintln!("rejected: {}", crate::output::clean(problem));
        }
        if report.problems.len() > 20 {
            eprintln!("… and {} more", report.problems.len() - 20);
        }
        anyhow::bail!(
            "import of {} refused: {} bad object(s); nothing was stored",
            args.file.display(),
            report.problems.len()
        );
    }
    outcome?;
    let objects = report.experiments
        + report.held
        + report.tasks
        + report.control_events
        + report.profiles
        + report.artifacts;
    if ctx.json {
        print_json(&object([
            ("lines", Value::Int(report.lines as i64)),
            ("experiments", Value::Int(report.experiments as i64)),
            ("held", Value::Int(report.held as i64)),
            ("tasks", Value::Int(report.tasks as i64)),
            ("control_events", Value::Int(report.control_events as i64)),
            ("profiles", Value::Int(report.profiles as i64)),
            ("artifacts", Value::Int(report.artifacts as i64)),
            ("already_present", Value::Int(report.already_present as i64)),
            ("seconds", Value::Float(elapsed)),
            (
                "peak_rss_kib",
                spore_train::child::peak_rss_kib("self")
                    .map_or(Value::Null, |k| Value::Int(k as i64)),
            ),
        ]));
        return Ok(());
    }
    println!(
        "Imported {objects} objects: {} experiments ({} held for a missing parent), {} tasks, {} control events, {} profiles, {} artifacts; {} already present.",
        report.experiments + report.held,
        report.held,
        report.tasks,
        report.control_events,
        report.profiles,
        report.artifacts,
        report.already_present
    );
    if args.stats {
        println!(
            "{} lines in {:.2} s ({:.0} lines/s), peak RSS {} MiB",
            report.lines,
            elapsed,
            report.lines as f64 / elapsed.max(1e-9),
            spore_train::child::peak_rss_kib("self")
                .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
        );
    }
    Ok(())
}

/// With a node running on the data dir, its store is its own: check every line here, then hand
/// the file to the node, which checks again, stores and publishes.
fn import_into_running_node(ctx: &Context, args: &ImportArgs) -> Result<()> {
    let bytes = super::verify::read_input(&args.file)?;
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| l.iter().any(|b| !b.is_ascii_whitespace()))
        .map(|(i, l)| (i + 1, l))
        .collect();
    let problems: Vec<String> = std::thread::scope(|s| {
        let chunk = lines.len().div_ceil(2).max(1);
        let handles: Vec<_> = lines
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|(n, l)| check_line(l).err().map(|e| format!("line {n}: {e}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    });
    if !problems.is_empty() {
        for problem in problems.iter().take(20) {
            eprintln!("rejected: {}", crate::output::clean(problem));
        }
        anyhow::bail!(
            "import of {} refused: {} bad object(s); nothing was sent to the node",
            args.file.display(),
            problems.len()
        );
    }
    let payload: Vec<&[u8]> = lines.iter().map(|(_, l)| *l).collect();
    let reply = crate::control::request_running(&ctx.data_dir.socket(), "publish", &payload)?;
    let n = |k: &str| reply.get(k).and_then(Value::as_i64).unwrap_or(0);
    if ctx.json {
        print_json(&reply);
    } else {
        println!(
            "Sent {} objects to the running node: {} stored ({} held for a missing parent), {} already present, {} rejected.",
            payload.len(),
            n("accepted") + n("held"),
            n("held"),
            n("already_present"),
            n("rejected")
        );
    }
    if n("rejected") > 0 {
        if let Some(Value::Array(problems)) = reply.get("problems") {
            for p in problems.iter().filter_map(Value::as_str) {
                eprintln!("rejected: {}", crate::output::clean(p));
            }
        }
        anyhow::bail!("the node refused {} object(s)", n("rejected"));
    }
    Ok(())
}
