//! Read-only views of the store: status, frontier, graph, info.

// A command without a running node opens the store itself; with one, it asks the node.
#![allow(clippy::disallowed_methods)]

use anyhow::{Context as _, Result};
use spore_actors::Reader;
use spore_spec::json::{object, Value};
use spore_spec::{ExperimentRecord, Goal, Status};

use super::Context;
use crate::output::{human_count, print_json, short, Table};

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

/// A record as JSON output shows it: its signed fields plus local facts.
fn record_json(read: &Reader, record: &ExperimentRecord, task_id: &str) -> Result<Value> {
    let mut value = record.to_value();
    let verified = read.index_entry(&record.id)?.is_some_and(|e| e.verified);
    let summary = read.verdict_summary(&record.id)?.unwrap_or_default();
    if let Value::Object(members) = &mut value {
        members.push(("stored_task_id".into(), Value::Str(task_id.into())));
        members.push(("verified".into(), Value::Bool(verified)));
        members.push(("verified_by".into(), Value::Int(summary.verified_by as i64)));
        members.push(("challenged".into(), Value::Bool(summary.challenged)));
        members.push((
            "dispute".into(),
            summary
                .outcome
                .map_or(Value::Null, |o| Value::Str(o.as_str().into())),
        ));
    }
    Ok(value)
}

/// What other nodes' reruns say of record `id`, in a few characters: `3 nodes`, `challenged`,
/// `upheld`, `rejected`, or `-` (unverified).
fn verification(read: &Reader, id: &str) -> Result<String> {
    let Some(v) = read.verdict_summary(id)? else {
        return Ok("-".into());
    };
    Ok(match (v.outcome, v.challenged, v.verified_by) {
        (Some(o), _, _) => o.as_str().into(),
        (None, true, _) => "challenged".into(),
        (None, false, 0) => "-".into(),
        (None, false, 1) => "1 node".into(),
        (None, false, n) => format!("{n} nodes"),
    })
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

pub fn status(ctx: &Context, args: TaskArg) -> Result<()> {
    let store = ctx.data_dir.open_store()?;
    let read = store.read()?;
    let task_id = ctx.resolve_task(&read, args.task.as_deref())?;
    let row = read.task(&task_id)?;
    let goal = read.task_goal(&task_id)?;
    let stats = read.task_stats(&task_id)?.unwrap_or_default();
    let frontier_size = read.frontier_size(&task_id, goal)?;
    let best = read.frontier_ids_limited(&task_id, goal, 1)?;
    let best = load(&read, &best)?.pop();
    let recent = load(&read, &read.recent_ids(&task_id, 10)?)?;
    let name = row
        .as_ref()
        .map_or("", |r| r.manifest.name.as_str())
        .to_string();
    if ctx.json {
        print_json(&object([
            ("task_id", Value::Str(task_id.clone())),
            ("name", Value::Str(name)),
            ("goal", Value::Str(goal.as_str().into())),
            ("experiment_count", Value::Int(stats.count as i64)),
            ("keep_count", Value::Int(stats.keep as i64)),
            ("discard_count", Value::Int(stats.discard as i64)),
            ("crash_count", Value::Int(stats.crash as i64)),
            ("frontier_size", Value::Int(frontier_size as i64)),
            (
                "best_val_bpb",
                best.as_ref().map_or(Value::Null, |b| b.val_bpb.to_value()),
            ),
            (
                "best_id",
                best.as_ref()
                    .map_or(Value::Null, |b| Value::Str(b.id.clone())),
            ),
            (
                "recent",
                Value::Array(
                    recent
                        .iter()
                        .map(|r| record_json(&read, r, &task_id))
                        .collect::<Result<_>>()?,
                ),
            ),
        ]));
        return Ok(());
    }
    println!("Task:        {} {}", task_id, name);
    println!(
        "Goal:        {} {}",
        goal.as_str(),
        row.as_ref()
            .map_or("val_bpb", |r| r.manifest.metric.as_str())
    );
    println!(
        "Experiments: {} (keep {}, discard {}, crash {})",
        stats.count, stats.keep, stats.discard, stats.crash
    );
    println!("Frontier:    {frontier_size}");
    match &best {
        Some(b) => println!(
            "Best:        {} ({})",
            metric(b.val_bpb.value()),
            short(&b.id, 12)
        ),
        None => println!("Best:        -"),
    }
    if !recent.is_empty() {
        println!();
        let mut table = Table::new(&[
            ("CID", 12),
            ("val_bpb", 12),
            ("Status", 8),
            ("Node", 8),
            ("Verified", 10),
            ("Description", 50),
        ]);
        for r in &recent {
            table.row(vec![
                short(&r.id, 12).into(),
                metric(r.val_bpb.value()),
                r.status.as_str().into(),
                short(&r.node_id, 8).into(),
                verification(&read, &r.id)?,
                r.description.clone(),
            ]);
        }
        table.print();
    }
    Ok(())
}

pub fn frontier(ctx: &Context, args: FrontierArgs) -> Result<()> {
    let store = ctx.data_dir.open_store()?;
    let read = store.read()?;
    let task_id = ctx.resolve_task(&read, args.task.task.as_deref())?;
    let goal = read.task_goal(&task_id)?;
    let limit = if args.limit == 0 {
        usize::MAX
    } else {
        args.limit
    };
    let ids = read.frontier_ids(&task_id, goal)?;
    // Load records best first until `limit` of them pass the GPU filter.
    let mut records = Vec::new();
    let mut matching = 0;
    for id in &ids {
        if matching >= limit && args.gpu.is_none() {
            break;
        }
        let Some(r) = read.experiment(id)? else {
            continue;
        };
        if args.gpu.as_ref().is_some_and(|gpu| &r.gpu_model != gpu) {
            continue;
        }
        matching += 1;
        if records.len() < limit {
            records.push(r);
        }
    }
    let total = if args.gpu.is_some() {
        matching
    } else {
        ids.len()
    };
    if ctx.json {
        let list = records
            .iter()
            .map(|r| record_json(&read, r, &task_id))
            .collect::<Result<_>>()?;
        print_json(&Value::Array(list));
        return Ok(());
    }
    if records.is_empty() {
        println!("No frontier yet for task {}.", short(&task_id, 16));
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
    for r in &records {
        table.row(vec![
            short(&r.id, 12).into(),
            metric(r.val_bpb.value()),
            r.depth.to_string(),
            r.gpu_model.clone(),
            r.num_steps.to_string(),
            human_count(r.num_params),
            verification(&read, &r.id)?,
            r.description.clone(),
        ]);
    }
    table.print();
    if total > records.len() {
        println!(
            "… {} more on the frontier (--limit 0 shows all)",
            total - records.len()
        );
    }
    Ok(())
}

pub fn graph(ctx: &Context, args: GraphArgs) -> Result<()> {
    let store = ctx.data_dir.open_store()?;
    let read = store.read()?;
    let task_id = ctx.resolve_task(&read, args.task.task.as_deref())?;
    let stats = read.task_stats(&task_id)?.unwrap_or_default();
    let Some(root) = stats.root else {
        println!("Task {} has no records yet.", short(&task_id, 16));
        return Ok(());
    };
    // Depth-first with an explicit stack: deep trees cannot overflow the call stack.
    let mut stack = vec![(root, 0usize)];
    let mut out = String::new();
    while let Some((id, level)) = stack.pop() {
        let Some(r) = read.experiment(&id)? else {
            continue;
        };
        let mark = match r.status {
            Status::Keep => "[+]",
            Status::Discard => "[x]",
            Status::Crash => "[!]",
        };
        let description: String = r.description.replace('\n', " ").chars().take(40).collect();
        out.push_str(&format!(
            "{}{} {} task={} val_bpb={} | {}\n",
            "  ".repeat(level),
            mark,
            short(&r.id, 8),
            short(&task_id, 8),
            metric(r.val_bpb.value()),
            description
        ));
        if level < args.depth {
            let mut children = read.children(&id)?;
            children.reverse();
            stack.extend(children.into_iter().map(|c| (c, level + 1)));
        }
    }
    print!("{out}");
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
    println!(
        "Node:        {}",
        node_id
            .as_deref()
            .unwrap_or("- (no identity yet: `spored init`)")
    );
    println!("Listen:      {}:{}", c.host, c.port);
    println!("Explorer:    http://{}:{}", c.web_host, c.web_port);
    println!("Mode:        {}", c.mode.as_str());
    println!("Data dir:    {}", ctx.data_dir.root.display());
    println!("Peers:       {} configured, {} known", c.peer.len(), peers);
    println!("Active task: {}", active.as_deref().unwrap_or("-"));
    println!("Experiments: {count} ({held} waiting for a parent)");
    println!("Tasks:       {}", read.task_count()?);
    match best {
        Some(b) => println!(
            "Best:        {} ({})",
            metric(b.val_bpb.value()),
            short(&b.id, 12)
        ),
        None => println!("Best:        -"),
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
    println!("Node:        {} (running)", s("node_id"));
    println!("Peer id:     {}", s("peer_id"));
    if let Some(Value::Array(listen)) = reply.get("listen") {
        for addr in listen.iter().filter_map(Value::as_str) {
            println!("Listen:      {addr}");
        }
    }
    println!("Mode:        {}", s("mode"));
    println!("Data dir:    {}", ctx.data_dir.root.display());
    println!(
        "Peers:       {} connected (libp2p), {} reference peers",
        n("connected_peers"),
        n("legacy_peers")
    );
    println!(
        "Experiments: {} ({} waiting for a parent)",
        n("experiment_count"),
        n("held_count")
    );
    println!("Tasks:       {}", n("task_count"));
    println!("Artifacts:   {}", n("artifact_count"));
    Ok(())
}
