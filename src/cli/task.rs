//! `spored task create|list|show|use` and `spored tasks`.

use anyhow::{Context as _, Result};
use clap::Subcommand;
use spore_actors::command_task::{self, Evaluator};
use spore_spec::crypto::sha256_hex;
use spore_spec::json::{object, Value};
use spore_spec::{Signed, TaskManifest};

use spore_spec::wire::Message;

use super::Context;
use crate::config;
use crate::output::{clean, field, print_json, short, Table};

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Sign a new task manifest, store it and make it the active task
    Create(Box<CreateArgs>),
    /// List tasks
    List,
    /// Show one task
    Show {
        /// Task id or unique prefix
        task_id: String,
    },
    /// Pin the task this node researches (a running node switches at its next experiment)
    Use {
        /// Task id or unique prefix
        #[arg(required_unless_present = "unpin")]
        task_id: Option<String>,
        /// Pin nothing: research the most active task this node can run
        #[arg(long, conflicts_with = "task_id")]
        unpin: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// A command task described by a file (config/tasks/*.toml): its baseline source file and
    /// its evaluator are stored as artifacts; the other flags are not used
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "base_code_cid", "prepare_cid"])]
    pub from: Option<std::path::PathBuf>,
    /// The task's name, shown in listings and the explorer
    #[arg(long, required_unless_present = "from", default_value = "")]
    pub name: String,
    /// What the task is about
    #[arg(long, default_value = "")]
    pub description: String,
    /// The task type of the manifest
    #[arg(long, default_value = "ml_train")]
    pub task_type: String,
    /// What a record's code is: `spore_gpt_config` (spored trains it) or the reference's
    /// `python_train_script` (reference nodes train it; spored only syncs and serves it)
    #[arg(long, default_value = spore_train::config::ARTIFACT_TYPE)]
    pub artifact_type: String,
    /// The metric records report
    #[arg(long, default_value = "val_bpb")]
    pub metric: String,
    /// Whether lower or higher metric values are better
    #[arg(long, default_value = "minimize", value_parser = ["minimize", "maximize"])]
    pub goal: String,
    /// The root's code (default for spore_gpt_config: the built-in baseline)
    #[arg(long, default_value = "")]
    pub base_code_cid: String,
    /// The data preparation (default for spore_gpt_config: the built-in byte-level one)
    #[arg(long, default_value = "")]
    pub prepare_cid: String,
    /// The corpus (default for spore_gpt_config: the built-in King James Bible)
    #[arg(long, default_value = "")]
    pub dataset_cid: String,
    /// Seconds one experiment may train
    #[arg(long, default_value_t = 60)]
    pub time_budget: i64,
}

pub fn run(ctx: &Context, cmd: TaskCommand) -> Result<()> {
    match cmd {
        TaskCommand::Create(args) => create(ctx, *args),
        TaskCommand::List => list(ctx),
        TaskCommand::Show { task_id } => show(ctx, &task_id),
        TaskCommand::Use { task_id, .. } => use_task(ctx, task_id.as_deref()),
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
        let bodies = vec![
            artifact_body(&manifest.base_code_cid, spec.candidate.clone()),
            artifact_body(&manifest.prepare_cid, spec.evaluator.document()),
            Message::Task(manifest.clone()).encode_body(),
        ];
        ctx.publish(bodies)?.ensure_stored()?;
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
    anyhow::ensure!(
        (1..=86_400).contains(&manifest.time_budget),
        "--time-budget must be 1..=86400 seconds"
    );
    let mut bodies = Vec::new();
    if manifest.artifact_type == spore_train::config::ARTIFACT_TYPE {
        // the built-in corpus, preparation and baseline unless the flags name others
        use spore_train::data::{KJV_SHA256, PREPARE_SPEC};
        if manifest.dataset_cid.is_empty() {
            manifest.dataset_cid = KJV_SHA256.into();
        }
        if manifest.prepare_cid.is_empty() {
            manifest.prepare_cid = sha256_hex(PREPARE_SPEC.as_bytes());
        }
        if manifest.base_code_cid.is_empty() {
            let baseline = spore_actors::default_task::baseline().to_bytes();
            manifest.base_code_cid = sha256_hex(&baseline);
            bodies.push(artifact_body(&manifest.base_code_cid, baseline));
        }
    }
    manifest.sign_with(&identity);
    bodies.push(Message::Task(manifest.clone()).encode_body());
    ctx.publish(bodies)?.ensure_stored()?;
    created(ctx, &manifest)
}

/// Pins `task_id` ("": none) in the config file and has a running node take it. `Some(note)`
/// saying what the running node does, `None` when no node runs.
fn pin(ctx: &Context, task_id: &str) -> Result<Option<String>> {
    config::set_key(&ctx.config_path, "task_id", task_id)?;
    let Some(pinned) = ctx.reload_running()? else {
        return Ok(None);
    };
    // `spored run --task T` pins T whatever the file says: say so rather than pretend
    if pinned.as_deref().unwrap_or("") != task_id {
        eprintln!(
            "warning: saved, but the running node pins {} (its --task flag wins over the config \
             file until it restarts without it)",
            pinned.as_deref().unwrap_or("no task")
        );
    }
    Ok(Some(match pinned {
        Some(task) => format!(
            " (the running node switches to {} at its next experiment)",
            short(&task, 16)
        ),
        None => " (the running node picks the most active task at its next experiment)".into(),
    }))
}

fn artifact_body(cid: &str, code: Vec<u8>) -> String {
    Message::CodeResponse {
        code_cid: cid.to_string(),
        code,
    }
    .encode_body()
}

/// Makes the new task the active one when this node can research it, and says so.
fn created(ctx: &Context, manifest: &TaskManifest) -> Result<()> {
    let runnable = spore_actors::research::can_research(&manifest.artifact_type);
    let note = match runnable {
        true => pin(ctx, &manifest.task_id)?.unwrap_or_default(),
        false => String::new(),
    };
    if ctx.json {
        let mut value = manifest.to_value();
        if let Value::Object(members) = &mut value {
            members.push(("pinned".into(), Value::Bool(runnable)));
        }
        print_json(&value);
        return Ok(());
    }
    spore_actors::say!("Created task {}", manifest.task_id);
    if runnable {
        spore_actors::say!("Pinned: this node researches it{note}");
    } else {
        spore_actors::say!(
            "Not pinned: spored cannot train artifact type {:?} (it trains {:?}; reference nodes \
             train the rest). The task syncs and reference nodes can research it.",
            clean(&manifest.artifact_type),
            spore_train::config::ARTIFACT_TYPE
        );
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
    let v = ctx.query("tasks", vec![])?;
    if ctx.json {
        print_json(&v);
        return Ok(());
    }
    let rows = match &v {
        Value::Array(rows) => rows.as_slice(),
        _ => &[],
    };
    if rows.is_empty() {
        spore_actors::say!("No tasks yet. Create one with `spored task create --name NAME`.");
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
    for row in rows {
        table.row(vec![
            if field::b(row, "is_active") { "*" } else { "" }.into(),
            short(field::s(row, "task_id"), 16).into(),
            field::s(row, "name").into(),
            field::s(row, "task_type").into(),
            field::s(row, "metric").into(),
            field::s(row, "goal").into(),
            field::s(row, "source").into(),
            field::n(row, "experiment_count").to_string(),
            field::f(row, "best").map_or("-".into(), super::inspect::metric),
        ]);
    }
    table.print();
    Ok(())
}

fn show(ctx: &Context, given: &str) -> Result<()> {
    let v = ctx.query("task", vec![("task", Value::Str(given.into()))])?;
    if ctx.json {
        print_json(&v);
        return Ok(());
    }
    for (key, value) in v.as_object().unwrap_or_default() {
        let text = match value {
            Value::Str(s) => clean(s),
            Value::Null => "-".into(),
            other => clean(&spore_spec::json::to_wire(other)),
        };
        spore_actors::say!("{key}: {text}");
    }
    Ok(())
}

fn use_task(ctx: &Context, given: Option<&str>) -> Result<()> {
    let task_id = match given {
        None => String::new(),
        Some(given) => {
            let task = ctx.query("task", vec![("task", Value::Str(given.into()))])?;
            let artifact_type = field::s(&task, "artifact_type");
            if !artifact_type.is_empty() && !spore_actors::research::can_research(artifact_type) {
                anyhow::bail!(
                    "spored cannot train tasks of artifact type {:?} (it trains {:?}); not pinned",
                    clean(artifact_type),
                    spore_train::config::ARTIFACT_TYPE
                );
            }
            field::s(&task, "task_id").to_string()
        }
    };
    let running = pin(ctx, &task_id)?;
    if ctx.json {
        print_json(&object([
            (
                "task_id",
                crate::query::opt((!task_id.is_empty()).then_some(task_id.as_str())),
            ),
            ("running_node", Value::Bool(running.is_some())),
        ]));
        return Ok(());
    }
    let note = running.unwrap_or_default();
    match task_id.as_str() {
        "" => spore_actors::say!("No task pinned{note}"),
        id => spore_actors::say!("Active task: {id}{note}"),
    }
    Ok(())
}
