//! The read commands as queries: each answers a JSON value from a store snapshot, and the
//! command prints that value (`--json`) or a table made from it. A command line with no node
//! running answers from the store it opens; a running node answers the same request over its
//! control socket with this same code (`spore_actors::control_socket::QueryFn`), so a command
//! prints the same whether the node runs or not. docs/cli.md lists the requests and shapes.

use spore_actors::Reader;
use spore_spec::json::{object, Value};
use spore_spec::wire::Message;
use spore_spec::{ExperimentRecord, Status};

type Answer = Result<Value, String>;

/// Answers one request (`{"query": name, …}`).
pub fn answer(read: &Reader, request: &Value) -> Answer {
    let name = request.get("query").and_then(Value::as_str).unwrap_or("");
    let result = match name {
        "status" => status(read, request),
        "frontier" => frontier(read, request),
        "graph" => graph(read, request),
        "tasks" => tasks(read, request),
        "task" => task(read, request),
        "export" => export(read, request),
        "profile" => profile(read, request),
        other => return Err(format!("unknown query {other:?}")),
    };
    result.map_err(|e| format!("{e:#}"))
}

/// A request for query `name` with `args` (name, value) and the caller's pinned task.
pub fn request(name: &str, pinned: &str, args: Vec<(&str, Value)>) -> Value {
    let mut members = vec![
        ("query".to_string(), Value::Str(name.into())),
        ("pinned".to_string(), Value::Str(pinned.into())),
    ];
    members.extend(args.into_iter().map(|(k, v)| (k.to_string(), v)));
    Value::Object(members)
}

/// `Some(s)` as a string, `None` as null.
pub fn opt(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::Str(s.into()))
}

fn str_arg<'a>(request: &'a Value, key: &str) -> Option<&'a str> {
    request.get(key).and_then(Value::as_str)
}

fn int_arg(request: &Value, key: &str, default: i64) -> i64 {
    request.get(key).and_then(Value::as_i64).unwrap_or(default)
}

/// The task the request names (id or unique prefix), else the pinned one, else the most active.
fn resolve_task(read: &Reader, request: &Value) -> anyhow::Result<String> {
    use anyhow::Context as _;
    if let Some(given) = str_arg(request, "task") {
        return read
            .resolve_task(given)?
            .with_context(|| format!("unknown task id {given:?} (see `spored tasks`)"));
    }
    read.active_task(str_arg(request, "pinned"))?
        .context("no task yet: create one with `spored task create --name NAME` or import records")
}

/// A record as JSON output shows it: its signed fields plus local facts.
fn record_json(read: &Reader, record: &ExperimentRecord, task_id: &str) -> anyhow::Result<Value> {
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

fn load(read: &Reader, ids: &[String]) -> anyhow::Result<Vec<ExperimentRecord>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = read.experiment(id)? {
            out.push(r);
        }
    }
    Ok(out)
}

fn status(read: &Reader, request: &Value) -> anyhow::Result<Value> {
    let task_id = resolve_task(read, request)?;
    let row = read.task(&task_id)?;
    let goal = read.task_goal(&task_id)?;
    let stats = read.task_stats(&task_id)?.unwrap_or_default();
    let frontier_size = read.frontier_size(&task_id, goal)?;
    let best = read.frontier_ids_limited(&task_id, goal, 1)?;
    let best = load(read, &best)?.pop();
    let recent = load(read, &read.recent_ids(&task_id, 10)?)?;
    let manifest = row.as_ref().map(|r| &r.manifest);
    Ok(object([
        ("task_id", Value::Str(task_id.clone())),
        ("name", Value::Str(manifest.map_or("", |m| &m.name).into())),
        ("goal", Value::Str(goal.as_str().into())),
        (
            "metric",
            Value::Str(manifest.map_or("val_bpb", |m| &m.metric).into()),
        ),
        ("experiment_count", Value::Int(stats.count as i64)),
        ("keep_count", Value::Int(stats.keep as i64)),
        ("discard_count", Value::Int(stats.discard as i64)),
        ("crash_count", Value::Int(stats.crash as i64)),
        ("frontier_size", Value::Int(frontier_size as i64)),
        (
            "best_val_bpb",
            best.as_ref().map_or(Value::Null, |b| b.val_bpb.to_value()),
        ),
        ("best_id", opt(best.as_ref().map(|b| b.id.as_str()))),
        (
            "recent",
            Value::Array(
                recent
                    .iter()
                    .map(|r| record_json(read, r, &task_id))
                    .collect::<anyhow::Result<_>>()?,
            ),
        ),
    ]))
}

/// `{"task_id", "total", "records": [best first]}`; `limit` 0 means all, `gpu` filters.
fn frontier(read: &Reader, request: &Value) -> anyhow::Result<Value> {
    let task_id = resolve_task(read, request)?;
    let goal = read.task_goal(&task_id)?;
    let gpu = str_arg(request, "gpu");
    let limit = match int_arg(request, "limit", 50) {
        n if n <= 0 => usize::MAX,
        n => n as usize,
    };
    let ids = read.frontier_ids(&task_id, goal)?;
    // Load records best first until `limit` of them pass the GPU filter.
    let mut records = Vec::new();
    let mut matching = 0;
    for id in &ids {
        if matching >= limit && gpu.is_none() {
            break;
        }
        let Some(r) = read.experiment(id)? else {
            continue;
        };
        if gpu.is_some_and(|gpu| r.gpu_model != gpu) {
            continue;
        }
        matching += 1;
        if records.len() < limit {
            records.push(record_json(read, &r, &task_id)?);
        }
    }
    let total = if gpu.is_some() { matching } else { ids.len() };
    Ok(object([
        ("task_id", Value::Str(task_id)),
        ("total", Value::Int(total as i64)),
        ("records", Value::Array(records)),
    ]))
}

/// `{"task_id", "nodes": [{id, level, status, val_bpb, description, parent_id}]}` depth first
/// from the root, children oldest first, down to `depth` levels.
fn graph(read: &Reader, request: &Value) -> anyhow::Result<Value> {
    let task_id = resolve_task(read, request)?;
    let depth = int_arg(request, "depth", 50).max(0) as usize;
    let mut nodes = Vec::new();
    let root = read.task_stats(&task_id)?.unwrap_or_default().root;
    // Depth-first with an explicit stack: deep trees cannot overflow the call stack.
    let mut stack: Vec<(String, usize)> = root.into_iter().map(|r| (r, 0)).collect();
    while let Some((id, level)) = stack.pop() {
        let Some(r) = read.experiment(&id)? else {
            continue;
        };
        nodes.push(object([
            ("id", Value::Str(r.id.clone())),
            ("level", Value::Int(level as i64)),
            ("status", Value::Str(r.status.as_str().into())),
            ("val_bpb", r.val_bpb.to_value()),
            ("description", Value::Str(r.description.clone())),
            ("parent_id", opt(r.parent.as_deref())),
        ]));
        if level < depth {
            let mut children = read.children(&id)?;
            children.reverse();
            stack.extend(children.into_iter().map(|c| (c, level + 1)));
        }
    }
    Ok(object([
        ("task_id", Value::Str(task_id)),
        ("nodes", Value::Array(nodes)),
    ]))
}

/// Every task, most recently active first.
fn tasks(read: &Reader, request: &Value) -> anyhow::Result<Value> {
    let active = read.active_task(str_arg(request, "pinned"))?;
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
                ("root_experiment_id", opt(stats.root.as_deref())),
                (
                    "is_active",
                    Value::Bool(active.as_deref() == Some(row.task_id())),
                ),
            ])
        })
        .collect();
    Ok(Value::Array(list))
}

/// One task: its manifest's fields, where it came from, its record count and root.
fn task(read: &Reader, request: &Value) -> anyhow::Result<Value> {
    let task_id = resolve_task(read, request)?;
    let row = read.task(&task_id)?;
    let stats = read.task_stats(&task_id)?.unwrap_or_default();
    let mut members = vec![("task_id".to_string(), Value::Str(task_id.clone()))];
    if let Some(Value::Object(manifest)) = row.as_ref().map(|r| r.manifest.to_value()) {
        members.extend(manifest.into_iter().filter(|(k, _)| k != "task_id"));
    }
    members.push((
        "source".into(),
        opt(row.as_ref().map(|r| r.source.as_str())),
    ));
    members.push(("experiment_count".into(), Value::Int(stats.count as i64)));
    members.push(("root_experiment_id".into(), opt(stats.root.as_deref())));
    Ok(Value::Object(members))
}

/// A task as JSONL lines, parents first: manifest, profiles, records, control events, artifacts.
fn export(read: &Reader, request: &Value) -> anyhow::Result<Value> {
    let task_id = resolve_task(read, request)?;
    let mut lines: Vec<Value> = Vec::new();
    let mut push = |m: Message| lines.push(Value::Str(m.encode_body()));
    if let Some(row) = read.task(&task_id)? {
        if row.source == spore_actors::store::TaskSource::Manifest {
            push(Message::Task(row.manifest));
        }
    }
    // Parents first: breadth-first from the root, so an importer never has to hold anything.
    let mut records = Vec::new();
    if let Some(root) = read.task_stats(&task_id)?.and_then(|s| s.root) {
        let mut queue = std::collections::VecDeque::from([root]);
        while let Some(id) = queue.pop_front() {
            let Some(record) = read.experiment(&id)? else {
                continue;
            };
            queue.extend(read.children(&id)?);
            records.push(record);
        }
    }
    let mut nodes: Vec<&str> = records.iter().map(|r| r.node_id.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    for node in nodes {
        if let Some(profile) = read.profile(node)? {
            push(Message::Profile(profile));
        }
    }
    let mut code_cids = Vec::new();
    for record in &records {
        code_cids.push(record.code_cid.clone());
        push(Message::Experiment(record.clone()));
    }
    for event in read.control_events()? {
        if event.payload_str("task_id") == task_id {
            push(Message::Control(event));
        }
    }
    code_cids.sort();
    code_cids.dedup();
    for cid in code_cids {
        if let Ok(Some(code)) = read.artifact(&cid) {
            push(Message::CodeResponse {
                code_cid: cid,
                code,
            });
        }
    }
    Ok(object([
        ("task_id", Value::Str(task_id)),
        ("lines", Value::Array(lines)),
    ]))
}

/// The profile of `node_id`, or null.
fn profile(read: &Reader, request: &Value) -> anyhow::Result<Value> {
    let node = str_arg(request, "node_id").unwrap_or_default();
    Ok(read.profile(node)?.map_or(Value::Null, |p| p.to_value()))
}

/// `[+]`, `[x]` or `[!]` for a status as `graph` prints it.
pub fn status_mark(status: &str) -> &'static str {
    match Status::parse(status) {
        Some(Status::Keep) => "[+]",
        Some(Status::Discard) => "[x]",
        _ => "[!]",
    }
}
