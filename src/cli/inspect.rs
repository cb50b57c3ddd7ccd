//! Read-only views of the store: status, frontier, graph, info.

// A command without a running node opens the store itself; with one, it asks the node.
#![allow(clippy::disallowed_methods)]

use anyhow::{Context as _, Result};
use spore_actors::Reader;
use spore_spec::json::{object, Value};
use spore_spec::{ExperimentRecord, Goal};

use super::Context;
use crate::output::{clean, field, human_count, print_json, short, Table};
use crate::query::opt;

#[derive(clap::Args, Debug)]
pub struct TaskArg {
    /// Task id or unique prefix (default: the active task)
    #[arg(long)]
    pub task: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct FrontierArgs {
    #[command(flatten)]
    pub task: TaskArg,
    /// Only records whose gpu_model is exactly this
    #[arg(long, short = 'g')]
    pub gpu: Option<String>,
    /// Show at most this many records, best first (0 = all)
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub task: TaskArg,
    /// Deepest level printed below the root
    #[arg(long, default_value_t = 50)]
    pub depth: usize,
}

/// What other nodes' reruns say of a record (as `crate::query` shows it), in a few characters:
/// `3 nodes`, `challenged`, `upheld`, `rejected`, or `-` (unverified).
fn verification(record: &Value) -> String {
    let dispute = field::s(record, "dispute");
    if !dispute.is_empty() {
        return dispute.into();
    }
    if field::b(record, "challenged") {
        return "challenged".into();
    }
    match field::n(record, "verified_by") {
        0 => "-".into(),
        1 => "1 node".into(),
        n => format!("{n} nodes"),
    }
}

fn load(read: &Reader, ids: &[String]) -> Result<Vec<ExperimentRecord>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = read.experiment(id)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Six decimals where that reads well, Python's repr for very large or very small values.
pub fn metric(x: f64) -> String {
    if x == 0.0 || (1e-4..1e7).contains(&x.abs()) {
        format!("{x:.6}")
    } else {
        spore_spec::json::float_repr(x)
    }
}

fn metric_of(v: &Value, key: &str) -> String {
    field::f(v, key).map_or("-".into(), metric)
}

fn task_arg(task: &TaskArg) -> (&'static str, Value) {
    ("task", opt(task.task.as_deref()))
}

pub fn status(ctx: &Context, args: TaskArg) -> Result<()> {
    let v = ctx.query("status", vec![task_arg(&args)])?;
    if ctx.json {
        print_json(&v);
        return Ok(());
    }
    spore_actors::say!(
        "Task:        {} {}",
        field::s(&v, "task_id"),
        clean(field::s(&v, "name"))
    );
    spore_actors::say!(
        "Goal:        {} {}",
        field::s(&v, "goal"),
        clean(field::s(&v, "metric"))
    );
    spore_actors::say!(
        "Experiments: {} (keep {}, discard {}, crash {})",
        field::n(&v, "experiment_count"),
        field::n(&v, "keep_count"),
        field::n(&v, "discard_count"),
        field::n(&v, "crash_count")
    );
    spore_actors::say!("Frontier:    {}", field::n(&v, "frontier_size"));
    match v.get("best_id").and_then(Value::as_str) {
        Some(id) => spore_actors::say!(
            "Best:        {} ({})",
            metric_of(&v, "best_val_bpb"),
            short(id, 12)
        ),
        None => spore_actors::say!("Best:        -"),
    }
    let recent = field::list(&v, "recent");
    if !recent.is_empty() {
        spore_actors::say!("");
        let mut table = Table::new(&[
            ("CID", 12),
            ("val_bpb", 12),
            ("Status", 8),
            ("Node", 8),
            ("Verified", 10),
            ("Description", 50),
        ]);
        for r in recent {
            table.row(vec![
                short(field::s(r, "id"), 12).into(),
                metric_of(r, "val_bpb"),
                field::s(r, "status").into(),
                short(field::s(r, "node_id"), 8).into(),
                verification(r),
                field::s(r, "description").into(),
            ]);
        }
        table.print();
    }
    Ok(())
}

pub fn frontier(ctx: &Context, args: FrontierArgs) -> Result<()> {
    let v = ctx.query(
        "frontier",
        vec![
            task_arg(&args.task),
            ("gpu", opt(args.gpu.as_deref())),
            ("limit", Value::Int(args.limit as i64)),
        ],
    )?;
    let records = field::list(&v, "records");
    if ctx.json {
        print_json(&Value::Array(records.to_vec()));
        return Ok(());
    }
    if records.is_empty() {
        spore_actors::say!(
            "No frontier yet for task {}.",
            short(field::s(&v, "task_id"), 16)
        );
        return Ok(());
    }
    let mut table = Table::new(&[
        ("CID", 12),
        ("val_bpb", 12),
        ("Depth", 6),
        ("GPU", 12),
        ("Steps", 8),
        ("Params", 8),
        ("Verified", 10),
        ("Description", 50),
    ]);
    for r in records {
        table.row(vec![
            short(field::s(r, "id"), 12).into(),
            metric_of(r, "val_bpb"),
            field::n(r, "depth").to_string(),
            field::s(r, "gpu_model").into(),
            field::n(r, "num_steps").to_string(),
            human_count(field::n(r, "num_params")),
            verification(r),
            field::s(r, "description").into(),
        ]);
    }
    table.print();
    let total = field::n(&v, "total") as usize;
    if total > records.len() {
        spore_actors::say!(
            "… {} more on the frontier (--limit 0 shows all)",
            total - records.len()
        );
    }
    Ok(())
}

pub fn graph(ctx: &Context, args: GraphArgs) -> Result<()> {
    let v = ctx.query(
        "graph",
        vec![
            task_arg(&args.task),
            (
                "depth",
                Value::Int(args.depth.min(i64::MAX as usize) as i64),
            ),
        ],
    )?;
    if ctx.json {
        print_json(&v);
        return Ok(());
    }
    let task_id = field::s(&v, "task_id");
    let nodes = field::list(&v, "nodes");
    if nodes.is_empty() {
        spore_actors::say!("Task {} has no records yet.", short(task_id, 16));
        return Ok(());
    }
    let mut out = String::new();
    for r in nodes {
        let description: String = clean(field::s(r, "description")).chars().take(40).collect();
        out.push_str(&format!(
            "{}{} {} task={} val_bpb={} | {}\n",
            "  ".repeat(field::n(r, "level") as usize),
            crate::query::status_mark(field::s(r, "status")),
            short(field::s(r, "id"), 8),
            short(task_id, 8),
            metric_of(r, "val_bpb"),
            description
        ));
    }
    spore_actors::console::say_raw(format_args!("{out}"));
    Ok(())
}

pub fn info(ctx: &Context) -> Result<()> {
    if ctx.data_dir.socket().exists() && ctx.data_dir.has_identity() {
        if let Ok(reply) = crate::control::request(&ctx.data_dir.socket(), "info", &[]) {
            return print_running_info(ctx, &reply);
        }
    }
    let node_id = if ctx.data_dir.has_identity() {
        Some(ctx.data_dir.load_identity()?.node_id())
    } else {
        None
    };
    let store = match spore_actors::Store::open(&ctx.data_dir.store()) {
        Ok(store) => store,
        Err(spore_actors::StoreError::InUse { .. }) => {
            let reply = crate::control::request_running(&ctx.data_dir.socket(), "info", &[])?;
            return print_running_info(ctx, &reply);
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("opening the store in {}", ctx.data_dir.root.display()))
        }
    };
    let read = store.read()?;
    let active = read.active_task(Some(ctx.config.task_id.as_str()))?;
    let best = match &active {
        Some(task) => {
            let goal: Goal = read.task_goal(task)?;
            load(&read, &read.frontier_ids_limited(task, goal, 1)?)?.pop()
        }
        None => None,
    };
    let c = &ctx.config;
    let count = read.experiment_count()?;
    let held = read.held_count()?;
    let peers = read.peers()?.len();
    if ctx.json {
        print_json(&object([
            ("node_id", node_id.clone().map_or(Value::Null, Value::Str)),
            ("listen", Value::Str(format!("{}:{}", c.host, c.port))),
            (
                "explorer",
                Value::Str(format!("http://{}:{}", c.web_host, c.web_port)),
            ),
            ("mode", Value::Str(c.mode.as_str().into())),
            (
                "data_dir",
                Value::Str(ctx.data_dir.root.display().to_string()),
            ),
            ("configured_peers", Value::Int(c.peer.len() as i64)),
            ("known_peers", Value::Int(peers as i64)),
            (
                "active_task",
                active.clone().map_or(Value::Null, Value::Str),
            ),
            ("experiment_count", Value::Int(count as i64)),
            ("held_count", Value::Int(held as i64)),
            ("task_count", Value::Int(read.task_count()? as i64)),
            (
                "best_val_bpb",
                best.as_ref().map_or(Value::Null, |b| b.val_bpb.to_value()),
            ),
        ]));
        return Ok(());
    }
    spore_actors::say!(
        "Node:        {}",
        node_id
            .as_deref()
            .unwrap_or("- (no identity yet: `spored init`)")
    );
    spore_actors::say!("Listen:      {}:{}", c.host, c.port);
    spore_actors::say!("Explorer:    http://{}:{}", c.web_host, c.web_port);
    spore_actors::say!("Mode:        {}", c.mode.as_str());
    spore_actors::say!("Data dir:    {}", ctx.data_dir.root.display());
    spore_actors::say!("Peers:       {} configured, {} known", c.peer.len(), peers);
    spore_actors::say!("Active task: {}", active.as_deref().unwrap_or("-"));
    spore_actors::say!("Experiments: {count} ({held} waiting for a parent)");
    spore_actors::say!("Tasks:       {}", read.task_count()?);
    match best {
        Some(b) => spore_actors::say!(
            "Best:        {} ({})",
            metric(b.val_bpb.value()),
            short(&b.id, 12)
        ),
        None => spore_actors::say!("Best:        -"),
    }
    Ok(())
}

/// `info` of a running node, asked over its control socket.
fn print_running_info(ctx: &Context, reply: &Value) -> Result<()> {
    if ctx.json {
        let mut reply = reply.clone();
        if let Value::Object(members) = &mut reply {
            members.push(("running".into(), Value::Bool(true)));
            members.push((
                "data_dir".into(),
                Value::Str(ctx.data_dir.root.display().to_string()),
            ));
        }
        print_json(&reply);
        return Ok(());
    }
    let s = |k: &str| {
        reply
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string()
    };
    let n = |k: &str| reply.get(k).and_then(Value::as_i64).unwrap_or(0);
    spore_actors::say!("Node:        {} (running)", s("node_id"));
    spore_actors::say!("Peer id:     {}", s("peer_id"));
    if let Some(Value::Array(listen)) = reply.get("listen") {
        for addr in listen.iter().filter_map(Value::as_str) {
            spore_actors::say!("Listen:      {addr}");
        }
    }
    spore_actors::say!("Mode:        {}", s("mode"));
    spore_actors::say!("Data dir:    {}", ctx.data_dir.root.display());
    spore_actors::say!(
        "Peers:       {} connected (libp2p), {} reference peers",
        n("connected_peers"),
        n("legacy_peers")
    );
    spore_actors::say!(
        "Experiments: {} ({} waiting for a parent)",
        n("experiment_count"),
        n("held_count")
    );
    spore_actors::say!("Tasks:       {}", n("task_count"));
    spore_actors::say!("Artifacts:   {}", n("artifact_count"));
    Ok(())
}
