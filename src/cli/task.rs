//! `spored task create|list|show|use` and `spored tasks`.

// A command without a running node opens the store itself; with one, it asks the node.
#![allow(clippy::disallowed_methods)]

use anyhow::{Context as _, Result};
use clap::Subcommand;
use spore_actors::command_task::{self, Evaluator};
use spore_spec::crypto::sha256_hex;
use spore_spec::json::{object, Value};
use spore_spec::{Signed, TaskManifest};

use super::Context;
use crate::output::{print_json, short, Table};

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Sign a new task manifest, store it and make it the active task
    Create(Box<CreateArgs>),
    /// List tasks
    List,
    /// Show one task
    Show { task_id: String },
    /// Pin the active task
    Use { task_id: String },
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// A command task described by a file (config/tasks/*.toml): its baseline source file and
    /// its evaluator are stored as artifacts; the other flags are not used
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "base_code_cid", "prepare_cid"])]
    pub from: Option<std::path::PathBuf>,
    #[arg(long, required_unless_present = "from", default_value = "")]
    pub name: String,
    #[arg(long, default_value = "")]
    pub description: String,
    #[arg(long, default_value = "ml_train")]
    pub task_type: String,
    #[arg(long, default_value = "python_train_script")]
    pub artifact_type: String,
    #[arg(long, default_value = "val_bpb")]
    pub metric: String,
    #[arg(long, default_value = "minimize", value_parser = ["minimize", "maximize"])]
    pub goal: String,
    #[arg(long, default_value = "")]
    pub base_code_cid: String,
    #[arg(long, default_value = "")]
    pub prepare_cid: String,
    #[arg(long, default_value = "")]
    pub dataset_cid: String,
    /// Seconds one experiment may train
    #[arg(long, default_value_t = 300)]
    pub time_budget: i64,
}

pub fn run(ctx: &Context, cmd: TaskCommand) -> Result<()> {
    match cmd {
        TaskCommand::Create(args) => create(ctx, *args),
        TaskCommand::List => list(ctx),
        TaskCommand::Show { task_id } => show(ctx, &task_id),
        TaskCommand::Use { task_id } => use_task(ctx, &task_id),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn create(ctx: &Context, args: CreateArgs) -> Result<()> {
    let (identity, _) = ctx.data_dir.ensure_identity()?;
    if let Some(path) = &args.from {
        let spec = CommandTaskFile::load(path)?;
        let mut manifest = spec.manifest(&identity.node_id(), now());
        manifest.sign_with(&identity);
        let store = ctx.data_dir.open_store()?;
        store.write(|w| {
            w.put_artifact(&manifest.base_code_cid, &spec.candidate)?;
            w.put_artifact(&manifest.prepare_cid, &spec.evaluator.document())?;
            w.insert_manifest(&manifest)
        })?;
        return created(ctx, &manifest);
    }
    let mut manifest = TaskManifest {
        name: args.name.trim().to_string(),
        description: args.description.trim().to_string(),
        task_type: args.task_type,
        artifact_type: args.artifact_type,
        metric: args.metric,
        goal: args.goal,
        base_code_cid: args.base_code_cid,
        prepare_cid: args.prepare_cid,
        dataset_cid: args.dataset_cid,
        time_budget: args.time_budget,
        created_by: identity.node_id(),
        timestamp: now(),
        version: 1,
        ..TaskManifest::default()
    };
    anyhow::ensure!(!manifest.name.is_empty(), "--name must not be empty");
    manifest.sign_with(&identity);
    let store = ctx.data_dir.open_store()?;
    store.write(|w| w.insert_manifest(&manifest))?;
    created(ctx, &manifest)
}

/// Makes the new task the active one and says so.
fn created(ctx: &Context, manifest: &TaskManifest) -> Result<()> {
    let mut config = ctx.config.clone();
    config.task_id = manifest.task_id.clone();
    config.save(&ctx.config_path)?;
    if ctx.json {
        print_json(&manifest.to_value());
    } else {
        println!("Created task {}", manifest.task_id);
    }
    Ok(())
}

/// A command task's description file (`config/tasks/<name>.toml`); paths are relative to it.
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    name: String,
    #[serde(default)]
    description: String,
    metric: String,
    goal: String,
    time_budget: i64,
    candidate: CandidateFile,
    evaluator: EvaluatorFile,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CandidateFile {
    file: std::path::PathBuf,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct EvaluatorFile {
    file: std::path::PathBuf,
    interpreter: String,
    #[serde(default)]
    tolerance: f64,
}

/// A command task read and checked from its file.
struct CommandTaskFile {
    file: TaskFile,
    candidate: Vec<u8>,
    evaluator: Evaluator,
}

impl CommandTaskFile {
    fn load(path: &std::path::Path) -> Result<CommandTaskFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: TaskFile = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let read = |p: &std::path::Path| {
            std::fs::read(base.join(p))
                .with_context(|| format!("reading {}", base.join(p).display()))
        };
        let bad = |why: String| anyhow::anyhow!("{}: {why}", path.display());
        if file.name.trim().is_empty() {
            return Err(bad("name must not be empty".into()));
        }
        let metric_ok = !file.metric.is_empty()
            && file
                .metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !metric_ok {
            return Err(bad(format!(
                "metric {:?} must be letters, digits and _ (the evaluator prints `<metric>: <value>`)",
                file.metric
            )));
        }
        if !["minimize", "maximize"].contains(&file.goal.as_str()) {
            return Err(bad(format!(
                "goal {:?} must be minimize or maximize",
                file.goal
            )));
        }
        if !(1..=86_400).contains(&file.time_budget) {
            return Err(bad(format!(
                "time_budget {} must be 1..=86400 seconds",
                file.time_budget
            )));
        }
        let candidate_name = file
            .candidate
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let document = format!(
            "spored-evaluator/1 candidate={candidate_name} interpreter={} tolerance={}\n",
            file.evaluator.interpreter, file.evaluator.tolerance
        );
        let mut document = document.into_bytes();
        document.extend(read(&file.evaluator.file)?);
        let evaluator = Evaluator::parse(&document).map_err(bad)?;
        let candidate = read(&file.candidate.file)?;
        Ok(CommandTaskFile {
            file,
            candidate,
            evaluator,
        })
    }

    fn manifest(&self, signer: &str, timestamp: i64) -> TaskManifest {
        TaskManifest {
            name: self.file.name.trim().to_string(),
            description: self.file.description.trim().to_string(),
            task_type: command_task::TASK_TYPE.into(),
            artifact_type: command_task::ARTIFACT_TYPE.into(),
            metric: self.file.metric.clone(),
            goal: self.file.goal.clone(),
            base_code_cid: sha256_hex(&self.candidate),
            prepare_cid: sha256_hex(&self.evaluator.document()),
            dataset_cid: String::new(),
            time_budget: self.file.time_budget,
            created_by: signer.to_string(),
            timestamp,
            version: 1,
            ..TaskManifest::default()
        }
    }
}

fn list(ctx: &Context) -> Result<()> {
    let store = ctx.data_dir.open_store()?;
    let read = store.read()?;
    let active = read.active_task(Some(ctx.config.task_id.as_str()))?;
    let mut rows = Vec::new();
    for row in read.tasks()? {
        let stats = read.task_stats(row.task_id())?.unwrap_or_default();
        let best = read.frontier_ids_limited(row.task_id(), row.goal(), 1)?;
        let best = match best.first() {
            Some(id) => read.index_entry(id)?.map(|e| e.metric),
            None => None,
        };
        rows.push((row, stats, best));
    }
    rows.sort_by(|a, b| {
        (b.1.latest_timestamp, b.1.count, b.0.task_id()).cmp(&(
            a.1.latest_timestamp,
            a.1.count,
            a.0.task_id(),
        ))
    });
    if ctx.json {
        let list = rows
            .iter()
            .map(|(row, stats, best)| {
                object([
                    ("task_id", Value::Str(row.task_id().into())),
                    ("name", Value::Str(row.manifest.name.clone())),
                    ("task_type", Value::Str(row.manifest.task_type.clone())),
                    ("metric", Value::Str(row.manifest.metric.clone())),
                    ("goal", Value::Str(row.goal().as_str().into())),
                    ("source", Value::Str(row.source.as_str().into())),
                    ("experiment_count", Value::Int(stats.count as i64)),
                    ("best", best.map_or(Value::Null, Value::Float)),
                    (
                        "root_experiment_id",
                        stats.root.clone().map_or(Value::Null, Value::Str),
                    ),
                    (
                        "is_active",
                        Value::Bool(active.as_deref() == Some(row.task_id())),
                    ),
                ])
            })
            .collect();
        print_json(&Value::Array(list));
        return Ok(());
    }
    if rows.is_empty() {
        println!("No tasks yet. Create one with `spored task create --name NAME`.");
        return Ok(());
    }
    let mut table = Table::new(&[
        ("", 1),
        ("Task", 16),
        ("Name", 28),
        ("Type", 14),
        ("Metric", 10),
        ("Goal", 8),
        ("Source", 8),
        ("Records", 8),
        ("Best", 10),
    ]);
    for (row, stats, best) in &rows {
        table.row(vec![
            if active.as_deref() == Some(row.task_id()) {
                "*".into()
            } else {
                String::new()
            },
            short(row.task_id(), 16).into(),
            row.manifest.name.clone(),
            row.manifest.task_type.clone(),
            row.manifest.metric.clone(),
            row.goal().as_str().into(),
            row.source.as_str().into(),
            stats.count.to_string(),
            best.map_or("-".into(), super::inspect::metric),
        ]);
    }
    table.print();
    Ok(())
}

fn show(ctx: &Context, given: &str) -> Result<()> {
    let store = ctx.data_dir.open_store()?;
    let read = store.read()?;
    let task_id = ctx.resolve_task(&read, Some(given))?;
    let row = read.task(&task_id)?;
    let stats = read.task_stats(&task_id)?.unwrap_or_default();
    if ctx.json {
        let mut value = row
            .as_ref()
            .map_or(Value::Object(vec![]), |r| r.manifest.to_value());
        if let Value::Object(members) = &mut value {
            members.push((
                "source".into(),
                row.as_ref()
                    .map_or(Value::Null, |r| Value::Str(r.source.as_str().into())),
            ));
            members.push(("experiment_count".into(), Value::Int(stats.count as i64)));
            members.push((
                "root_experiment_id".into(),
                stats.root.clone().map_or(Value::Null, Value::Str),
            ));
        }
        print_json(&value);
        return Ok(());
    }
    println!("task_id: {task_id}");
    if let Some(row) = &row {
        let m = &row.manifest;
        for (k, v) in [
            ("name", m.name.as_str()),
            ("description", m.description.as_str()),
            ("task_type", m.task_type.as_str()),
            ("artifact_type", m.artifact_type.as_str()),
            ("metric", m.metric.as_str()),
            ("goal", m.goal.as_str()),
            ("base_code_cid", m.base_code_cid.as_str()),
            ("prepare_cid", m.prepare_cid.as_str()),
            ("dataset_cid", m.dataset_cid.as_str()),
            ("created_by", m.created_by.as_str()),
            ("source", row.source.as_str()),
        ] {
            println!("{k}: {v}");
        }
        println!("time_budget: {}", m.time_budget);
        println!("timestamp: {}", m.timestamp);
    }
    println!("experiment_count: {}", stats.count);
    println!(
        "root_experiment_id: {}",
        stats.root.as_deref().unwrap_or("-")
    );
    Ok(())
}

fn use_task(ctx: &Context, given: &str) -> Result<()> {
    let store = ctx.data_dir.open_store()?;
    let read = store.read()?;
    let task_id = ctx.resolve_task(&read, Some(given))?;
    let mut config = ctx.config.clone();
    config.task_id = task_id.clone();
    config.save(&ctx.config_path)?;
    println!("Active task: {task_id}");
    Ok(())
}
