//! The JSON API (`/api/...`): the reference explorer's routes and field names, with proper
//! status codes: 404 for an unknown id, 400 for a bad parameter (a JSON body says which), 503
//! when the store cannot be read; never a 500 because of what a record contains.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Deserialize;
use spore_actors::StoreError;
use spore_spec::json::{self, object, Value};

use crate::views::{self, View};
use crate::State as Explorer;

/// An API error: its status and a sentence for the `error` field.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no {what} {id:?}"),
        }
    }

    pub fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        reply_with(
            self.status,
            object([("error", Value::Str(self.message.clone()))]),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "explorer: store read failed");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("store unavailable: {e}"),
        }
    }
}

type Reply = Result<HttpResponse, ApiError>;

fn reply_with(status: StatusCode, value: Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(json::to_wire(&views::finite(value)))
}

fn reply(value: Value) -> Reply {
    Ok(reply_with(StatusCode::OK, value))
}

/// Runs `f` on a read snapshot on a blocking thread (redb reads are synchronous).
async fn read<T: Send + 'static>(
    state: &web::Data<Explorer>,
    f: impl FnOnce(&mut View) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    web::block(move || {
        #[allow(clippy::disallowed_methods)] // on a blocking thread
        let read = store.read()?;
        let mut view = View::new(&read);
        f(&mut view)
    })
    .await
    .map_err(|e| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("explorer busy: {e}"),
    })?
}

fn clamp(limit: Option<i64>, default: i64, max: i64) -> usize {
    limit.unwrap_or(default).clamp(1, max) as usize
}

/// A 64-hex id, or a 400 naming the parameter.
fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if spore_spec::crypto::is_lower_hex(id, 64) {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "{what} must be 64 lowercase hex characters"
        )))
    }
}

/// An empty or absent `task_id` means the active task (reference: "task_id resolution"); a
/// given one must be a known task.
fn resolve_task(
    view: &mut View,
    pinned: Option<&str>,
    task_id: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match task_id.filter(|t| !t.is_empty()) {
        Some(t) => {
            check_id("task_id", t)?;
            if view.read.task(t)?.is_none() && view.read.task_stats(t)?.is_none() {
                return Err(ApiError::not_found("task", t));
            }
            Ok(Some(t.to_string()))
        }
        None => Ok(view.read.active_task(pinned)?),
    }
}

#[derive(Deserialize)]
pub struct TaskQuery {
    task_id: Option<String>,
}

#[derive(Deserialize)]
pub struct LimitQuery {
    task_id: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
pub struct FrontierQuery {
    task_id: Option<String>,
    gpu: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
pub struct GraphQuery {
    task_id: Option<String>,
    limit: Option<i64>,
    /// `full` (default: whole records, as the reference) or `dag` (what a DAG view draws).
    shape: Option<String>,
}

/// What the DAG view draws of a record: about half the bytes of the whole record.
fn dag_node(view: &mut View, found: &views::Found) -> Result<Value, StoreError> {
    let goal = view.goal(&found.entry.task_id)?;
    let r = &found.record;
    let description: String = r.description.chars().take(140).collect();
    Ok(object([
        ("id", Value::Str(r.id.clone())),
        ("parent", r.parent.clone().map_or(Value::Null, Value::Str)),
        ("depth", Value::Int(r.depth)),
        ("status", Value::Str(r.status.as_str().to_string())),
        ("val_bpb", Value::Float(r.val_bpb.value())),
        ("timestamp", Value::Int(r.timestamp)),
        ("node_id", Value::Str(r.node_id.clone())),
        ("description", Value::Str(description)),
        ("verified", Value::Bool(found.entry.verified)),
        ("is_frontier", Value::Bool(found.entry.is_frontier(goal))),
        (
            "dispute",
            view.read
                .verdict_summary(&r.id)?
                .and_then(|v| v.outcome)
                .map_or(Value::Null, |o| Value::Str(o.as_str().into())),
        ),
    ]))
}

pub async fn stat(state: web::Data<Explorer>, q: web::Query<TaskQuery>) -> Reply {
    let pinned = state.pinned_task.get();
    let node_id = state.node_id.clone();
    let peer_count = state.peer_count().await;
    let clients = state.live_clients();
    let value = read(&state, move |view| {
        let active = view.read.active_task(pinned.as_deref())?;
        let task = resolve_task(view, pinned.as_deref(), q.task_id.as_deref())?;
        let (count, frontier, best, frontier_nodes) = match &task {
            Some(t) => {
                let goal = view.goal(t)?;
                let size = view.read.frontier_size(t, goal)? as i64;
                let nodes = view.frontier_nodes(t)?.len() as i64;
                let count = view.read.task_stats(t)?.map_or(0, |s| s.count);
                (count, size, view.best(t)?, nodes)
            }
            None => (view.read.experiment_count()?, 0, None, 0),
        };
        let nodes = view.read.all_participants()?;
        let profiles = view.read.profiles()?.len() as i64;
        Ok(object([
            ("task_id", task.map_or(Value::Null, Value::Str)),
            ("task_count", Value::Int(view.read.task_count()? as i64)),
            ("active_task_id", active.map_or(Value::Null, Value::Str)),
            ("experiment_count", Value::Int(count as i64)),
            ("frontier_size", Value::Int(frontier)),
            ("best_val_bpb", views::float(best)),
            ("peer_count", Value::Int(peer_count as i64)),
            ("node_id", Value::Str(node_id)),
            ("ws_client", Value::Int(clients as i64)),
            ("node_count", Value::Int(nodes.len() as i64)),
            ("profile_count", Value::Int(profiles)),
            (
                "verified_experiment_count",
                Value::Int(view.read.verified_count()? as i64),
            ),
            ("frontier_node_count", Value::Int(frontier_nodes)),
        ]))
    })
    .await?;
    reply(value)
}

pub async fn tasks(state: web::Data<Explorer>) -> Reply {
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let active = view.read.active_task(pinned.as_deref())?;
        let mut rows = Vec::new();
        for row in view.read.tasks()? {
            let summary = view.task_summary(&row, active.as_deref())?;
            let key = (
                summary
                    .get("latest_activity")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MIN),
                summary
                    .get("experiment_count")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                row.task_id().to_string(),
            );
            rows.push((key, summary));
        }
        rows.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(Value::Array(rows.into_iter().map(|(_, v)| v).collect()))
    })
    .await?;
    reply(value)
}

pub async fn task(state: web::Data<Explorer>, path: web::Path<String>) -> Reply {
    let task_id = path.into_inner();
    check_id("task id", &task_id)?;
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let Some(row) = view.read.task(&task_id)? else {
            return Err(ApiError::not_found("task", &task_id));
        };
        let active = view.read.active_task(pinned.as_deref())?;
        let Value::Object(mut members) = view.task_summary(&row, active.as_deref())? else {
            unreachable!("a summary is an object");
        };
        let goal = view.goal(&task_id)?;
        let frontier = view.read.frontier_ids_limited(&task_id, goal, 100)?;
        let recent = view.read.recent_ids(&task_id, 20)?;
        members.push(("frontier".into(), Value::Array(view.records(&frontier)?)));
        members.push(("recent".into(), Value::Array(view.records(&recent)?)));
        Ok(Value::Object(members))
    })
    .await?;
    reply(value)
}

/// Feed events, newest first, of one task (or the active one).
async fn feed_of(
    state: web::Data<Explorer>,
    task_id: Option<String>,
    limit: usize,
    keeps_only: bool,
) -> Reply {
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let Some(task) = resolve_task(view, pinned.as_deref(), task_id.as_deref())? else {
            return Ok(Value::Array(vec![]));
        };
        let mut out = Vec::new();
        // newest first; keeps are a minority, so look a bounded way back for them
        let ids = view
            .read
            .recent_ids(&task, if keeps_only { limit * 20 } else { limit })?;
        for id in ids {
            let Some(found) = view.find(&id)? else {
                continue;
            };
            if keeps_only && found.record.status != spore_spec::Status::Keep {
                continue;
            }
            out.push(view.feed_event(&found)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(Value::Array(out))
    })
    .await?;
    reply(value)
}

pub async fn feed(state: web::Data<Explorer>, q: web::Query<LimitQuery>) -> Reply {
    let q = q.into_inner();
    feed_of(state, q.task_id, clamp(q.limit, 50, 200), false).await
}

pub async fn task_feed(
    state: web::Data<Explorer>,
    path: web::Path<String>,
    q: web::Query<LimitQuery>,
) -> Reply {
    let task_id = path.into_inner();
    check_id("task id", &task_id)?;
    feed_of(state, Some(task_id), clamp(q.limit, 50, 200), false).await
}

pub async fn keeps_recent(state: web::Data<Explorer>, q: web::Query<LimitQuery>) -> Reply {
    let q = q.into_inner();
    feed_of(state, q.task_id, clamp(q.limit, 25, 200), true).await
}

/// The task's DAG: the newest `limit` records (default 2,000), the best `limit` frontier records
/// and the ancestors that connect them to the root, at most 3 × `limit` records in all (the
/// reference sends every record: 40 MB at 100k), parent → child edges, and the frontier ids.
pub async fn graph(state: web::Data<Explorer>, q: web::Query<GraphQuery>) -> Reply {
    let q = q.into_inner();
    let limit = clamp(q.limit, 2_000, 50_000);
    let dag = match q.shape.as_deref() {
        None | Some("") | Some("full") => false,
        Some("dag") => true,
        Some(_) => return Err(ApiError::bad("shape must be full or dag")),
    };
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let Some(task) = resolve_task(view, pinned.as_deref(), q.task_id.as_deref())? else {
            return Ok(object([
                ("task_id", Value::Null),
                ("node", Value::Array(vec![])),
                ("edge", Value::Array(vec![])),
                ("frontier_id", Value::Array(vec![])),
            ]));
        };
        let goal = view.goal(&task)?;
        let frontier = view.read.frontier_ids_limited(&task, goal, limit)?;
        let mut wanted: Vec<String> = view.read.recent_ids(&task, limit)?;
        wanted.extend(frontier.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let mut queue = std::collections::VecDeque::from(wanted);
        while let Some(id) = queue.pop_front() {
            if seen.len() >= 3 * limit {
                break;
            }
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(found) = view.find(&id)? else {
                continue;
            };
            if let Some(parent) = &found.record.parent {
                queue.push_back(parent.clone());
            }
            let parent = found.record.parent.clone();
            let shown = if dag {
                dag_node(view, &found)?
            } else {
                view.record(&found)?
            };
            nodes.push((
                found.record.timestamp,
                found.record.depth,
                id.clone(),
                parent,
                shown,
            ));
        }
        // oldest first, edges in the same order (as the reference lists them)
        nodes.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        for (_, _, id, parent, _) in &nodes {
            if let Some(parent) = parent.as_ref().filter(|p| seen.contains(*p)) {
                edges.push(object([
                    ("source", Value::Str(parent.clone())),
                    ("target", Value::Str(id.clone())),
                ]));
            }
        }
        Ok(object([
            ("task_id", Value::Str(task)),
            (
                "node",
                Value::Array(nodes.into_iter().map(|n| n.4).collect()),
            ),
            ("edge", Value::Array(edges)),
            (
                "frontier_id",
                Value::Array(frontier.into_iter().map(Value::Str).collect()),
            ),
        ]))
    })
    .await?;
    reply(value)
}

/// `/api/training`: what this node trains now: `runs`, one per busy slot (a GPU, or the CPU),
/// each `{label, device, preparing, step, planned, loss, tokens_per_s, elapsed, budget}`, and
/// `training`, the first of them or null. `preparing` is null once the run trains, before that
/// `{stage, of, what, gpu, elapsed, text}` (on a GPU: kernels being compiled), with `step` 0.
pub async fn training(state: web::Data<Explorer>) -> Reply {
    let runs: Vec<Value> = state
        .node
        .as_ref()
        .map(|n| n.metrics.training())
        .unwrap_or_default()
        .into_iter()
        .map(run_value)
        .collect();
    let first = runs.first().cloned().unwrap_or(Value::Null);
    reply(object([("training", first), ("runs", Value::Array(runs))]))
}

fn run_value(run: spore_actors::metrics::Training) -> Value {
    let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let t = run.progress;
    let preparing = match run.preparing {
        None => Value::Null,
        Some(s) => object([
            ("text", Value::Str(s.describe())),
            ("stage", int(s.stage)),
            ("of", int(s.of)),
            ("what", Value::Str(s.what)),
            ("gpu", Value::Bool(s.gpu)),
            ("elapsed", Value::Float(s.elapsed)),
        ]),
    };
    object([
        ("label", Value::Str(run.label)),
        ("device", Value::Str(run.device)),
        ("preparing", preparing),
        ("step", int(t.step)),
        ("planned", int(t.planned)),
        ("loss", Value::Float(t.loss)),
        ("tokens_per_s", Value::Float(t.tokens_per_s)),
        ("elapsed", Value::Float(t.elapsed)),
        ("budget", Value::Float(t.budget)),
    ])
}

/// Strings numbered in the order they were first seen (a row names a node by its number).
#[derive(Default)]
struct Interned {
    list: Vec<String>,
    index: std::collections::HashMap<String, i64>,
}

impl Interned {
    fn index(&mut self, key: &str) -> i64 {
        if let Some(i) = self.index.get(key) {
            return *i;
        }
        let i = self.list.len() as i64;
        self.list.push(key.to_string());
        self.index.insert(key.to_string(), i);
        i
    }

    fn into_value(self) -> Value {
        Value::Array(self.list.into_iter().map(Value::Str).collect())
    }
}

/// Most rows `/api/progress` answers (the newest); `truncated` says when a task has more.
const PROGRESS_ROWS: usize = 200_000;

/// `/api/progress`: every record of a task in one small array each (oldest first), for the
/// progress plot and the DAG, plus the running best as steps.
///
/// `{task_id, goal, metric, nodes: [node_id], gpus: [gpu_model],
///   rows: [[id, timestamp, value, status, verified, node, gpu, parent, frontier]],
///   best: [[timestamp, value, id]]}`; `status` is 0 keep, 1 discard, 2 crash; `verified` 1 when
/// reruns confirmed it, -1 when a dispute rejected it, else 0; `node` and `gpu` index `nodes` and
/// `gpus`; `parent` is the row index of the record's parent, -1 for a root or a parent not in
/// `rows`; `frontier` is 1 for a frontier record. The best steps follow the keep records that
/// are not rejected, as the frontier does.
pub async fn progress(state: web::Data<Explorer>, q: web::Query<TaskQuery>) -> Reply {
    let q = q.into_inner();
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let Some(task) = resolve_task(view, pinned.as_deref(), q.task_id.as_deref())? else {
            return Ok(object([
                ("task_id", Value::Null),
                ("rows", Value::Array(vec![])),
            ]));
        };
        let goal = view.goal(&task)?;
        let metric = view
            .read
            .task(&task)?
            .map_or("val_bpb".to_string(), |row| row.manifest.metric);
        // the newest PROGRESS_ROWS records (every one, for any task of this size)
        let mut ids = view.read.recent_ids(&task, PROGRESS_ROWS + 1)?;
        let truncated = ids.len() > PROGRESS_ROWS;
        ids.truncate(PROGRESS_ROWS);
        // oldest first
        ids.reverse();
        // Looked up in id order (B-tree pages in sequence: ~4× faster than in time order at 100k
        // records), then put back in time order. Only the index entry and the publisher are
        // read, not the whole record.
        let mut by_id: Vec<usize> = (0..ids.len()).collect();
        by_id.sort_unstable_by(|&a, &b| ids[a].cmp(&ids[b]));
        let mut found = Vec::new();
        found.resize_with(ids.len(), || None);
        // an unreadable record is left out (and said once), not the whole task's view
        let mut unreadable = None;
        let mut left_out = 0;
        for &i in &by_id {
            match (view.read.index_entry(&ids[i]), view.read.publisher(&ids[i])) {
                (Ok(Some(e)), Ok(Some(p))) => found[i] = Some((e, p)),
                (Ok(_), Ok(_)) => {}
                (Err(e), _) | (_, Err(e)) => {
                    left_out += 1;
                    unreadable.get_or_insert((ids[i].clone(), e));
                }
            }
        }
        if let Some((id, error)) = unreadable {
            tracing::warn!(%id, %error, left_out, "explorer: unreadable records left out of /api/progress");
        }
        // a row's index by id (rows are the ids that were found, in time order)
        let mut row = vec![-1i64; ids.len()];
        let mut next = 0;
        for (i, f) in found.iter().enumerate() {
            if f.is_some() {
                row[i] = next;
                next += 1;
            }
        }
        let row_of = |id: &str| {
            by_id
                .binary_search_by(|&i| ids[i].as_str().cmp(id))
                .map_or(-1, |k| row[by_id[k]])
        };
        let mut nodes = Interned::default();
        let mut gpus = Interned::default();
        let mut rows = Vec::with_capacity(ids.len());
        let mut best: Option<f64> = None;
        let mut steps = Vec::new();
        for (id, f) in ids.iter().zip(found) {
            let Some((e, (node_id, gpu_model))) = f else {
                continue;
            };
            let status = match e.status {
                spore_spec::Status::Keep => 0,
                spore_spec::Status::Discard => 1,
                spore_spec::Status::Crash => 2,
            };
            let verified = if e.rejected {
                -1
            } else {
                i64::from(e.verified)
            };
            rows.push(Value::Array(vec![
                Value::Str(id.clone()),
                Value::Int(e.timestamp),
                Value::Float(e.metric),
                Value::Int(status),
                Value::Int(verified),
                Value::Int(nodes.index(&node_id)),
                Value::Int(gpus.index(&gpu_model)),
                Value::Int(e.parent.as_deref().map_or(-1, row_of)),
                Value::Int(i64::from(e.is_frontier(goal))),
            ]));
            let counts = status == 0 && !e.rejected && e.metric.is_finite();
            let better = best.is_none_or(|b| match goal {
                spore_spec::Goal::Minimize => e.metric < b,
                spore_spec::Goal::Maximize => e.metric > b,
            });
            if counts && better {
                best = Some(e.metric);
                steps.push(Value::Array(vec![
                    Value::Int(e.timestamp),
                    Value::Float(e.metric),
                    Value::Str(id.clone()),
                ]));
            }
        }
        Ok(object([
            ("task_id", Value::Str(task)),
            ("goal", Value::Str(goal.as_str().into())),
            ("metric", Value::Str(metric)),
            ("nodes", nodes.into_value()),
            ("gpus", gpus.into_value()),
            ("rows", Value::Array(rows)),
            ("best", Value::Array(steps)),
            ("truncated", Value::Bool(truncated)),
        ]))
    })
    .await?;
    reply(value)
}

/// `/api/experiment/{cid}/curve`: the training curves this node kept of record `cid` (its own
/// run, its rerun) and of the record's parent, as `[[step, loss, tokens_per_s, seconds]]`, or
/// null where it has none. Local data: never synced or signed (`local: true` says so).
pub async fn curve(state: web::Data<Explorer>, path: web::Path<String>) -> Reply {
    let id = path.into_inner();
    check_id("cid", &id)?;
    let value = read(&state, move |view| {
        let Some(entry) = view.read.index_entry(&id)? else {
            return Err(ApiError::not_found("experiment", &id));
        };
        let parse = |text: Option<String>| {
            text.and_then(|t| json::parse(t.as_bytes()).ok())
                .unwrap_or(Value::Null)
        };
        let (run, rerun) = view.read.curves(&id)?;
        let parent = entry.parent;
        let parent_run = match &parent {
            Some(p) => view.read.curves(p)?.0,
            None => None,
        };
        Ok(object([
            ("id", Value::Str(id)),
            ("local", Value::Bool(true)),
            ("run", parse(run)),
            ("rerun", parse(rerun)),
            ("parent_id", parent.map_or(Value::Null, Value::Str)),
            ("parent_run", parse(parent_run)),
        ]))
    })
    .await?;
    reply(value)
}

pub async fn frontier(state: web::Data<Explorer>, q: web::Query<FrontierQuery>) -> Reply {
    let q = q.into_inner();
    let limit = clamp(q.limit, 1_000, 100_000);
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let Some(task) = resolve_task(view, pinned.as_deref(), q.task_id.as_deref())? else {
            return Ok(Value::Array(vec![]));
        };
        let goal = view.goal(&task)?;
        let mut out = Vec::new();
        for id in view.read.frontier_ids(&task, goal)? {
            let Some(found) = view.find(&id)? else {
                continue;
            };
            if q.gpu
                .as_deref()
                .is_some_and(|g| g != found.record.gpu_model)
            {
                continue;
            }
            out.push(view.record(&found)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(Value::Array(out))
    })
    .await?;
    reply(value)
}

pub async fn experiment(state: web::Data<Explorer>, path: web::Path<String>) -> Reply {
    let id = path.into_inner();
    check_id("experiment id", &id)?;
    let value = read(&state, move |view| match view.find(&id)? {
        Some(found) => {
            let mut value = view.record(&found)?;
            // the task's metric name, and what the evaluator (or trainer) printed when this
            // node ran or re-ran the record (issue #9)
            let metric = view
                .read
                .task(&found.entry.task_id)?
                .map_or("val_bpb".to_string(), |t| t.manifest.metric);
            let (run, rerun) = view.read.run_outputs(&id)?;
            if let Value::Object(members) = &mut value {
                members.push(("metric".into(), Value::Str(metric)));
                members.push(("run_output".into(), run.map_or(Value::Null, Value::Str)));
                members.push(("rerun_output".into(), rerun.map_or(Value::Null, Value::Str)));
            }
            Ok(value)
        }
        None => Err(ApiError::not_found("experiment", &id)),
    })
    .await?;
    reply(value)
}

/// The signed control events about a record (verifications, challenges, responses, disputes),
/// oldest first, each with whether it counts and why not (issue #7).
pub async fn experiment_events(state: web::Data<Explorer>, path: web::Path<String>) -> Reply {
    let id = path.into_inner();
    check_id("experiment id", &id)?;
    let value = read(&state, move |view| {
        let Some(verdict) = view.read.verdict(&id)? else {
            return Err(ApiError::not_found("experiment", &id));
        };
        let mut events = view.read.events_about(&id)?;
        events.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
        let list = events
            .into_iter()
            .map(|e| {
                let refused = verdict.refused.iter().find(|(eid, _)| *eid == e.id);
                let Value::Object(mut members) = e.to_value() else {
                    unreachable!("an event is an object");
                };
                members.push(("counts".into(), Value::Bool(refused.is_none())));
                members.push((
                    "refused_because".into(),
                    refused.map_or(Value::Null, |(_, why)| Value::Str(why.clone())),
                ));
                Value::Object(members)
            })
            .collect();
        Ok(Value::Array(list))
    })
    .await?;
    reply(value)
}

pub async fn ancestor(state: web::Data<Explorer>, path: web::Path<String>) -> Reply {
    let id = path.into_inner();
    check_id("experiment id", &id)?;
    let value = read(&state, move |view| {
        let mut out = Vec::new();
        let mut next = Some(id.clone());
        while let Some(current) = next {
            let Some(found) = view.find(&current)? else {
                break;
            };
            next = found.record.parent.clone();
            out.push(view.record(&found)?);
            if out.len() > 100_000 {
                break; // depth is bounded by the store's lineage rules; this is a backstop
            }
        }
        if out.is_empty() {
            return Err(ApiError::not_found("experiment", &id));
        }
        Ok(Value::Array(out))
    })
    .await?;
    reply(value)
}

pub async fn children(state: web::Data<Explorer>, path: web::Path<String>) -> Reply {
    let id = path.into_inner();
    check_id("experiment id", &id)?;
    let value = read(&state, move |view| {
        if view.read.index_entry(&id)?.is_none() {
            return Err(ApiError::not_found("experiment", &id));
        }
        let mut found = Vec::new();
        for child in view.read.children(&id)? {
            if let Some(f) = view.find(&child)? {
                found.push(f);
            }
        }
        found.sort_by(|a, b| {
            (a.record.timestamp, &a.record.id).cmp(&(b.record.timestamp, &b.record.id))
        });
        let mut out = Vec::new();
        for f in &found {
            out.push(view.record(f)?);
        }
        Ok(Value::Array(out))
    })
    .await?;
    reply(value)
}

pub async fn recent(state: web::Data<Explorer>, q: web::Query<LimitQuery>) -> Reply {
    let q = q.into_inner();
    let limit = clamp(q.limit, 50, 500);
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let Some(task) = resolve_task(view, pinned.as_deref(), q.task_id.as_deref())? else {
            return Ok(Value::Array(vec![]));
        };
        let ids = view.read.recent_ids(&task, limit)?;
        Ok(Value::Array(view.records(&ids)?))
    })
    .await?;
    reply(value)
}

pub async fn node_profile(state: web::Data<Explorer>, path: web::Path<String>) -> Reply {
    let node_id = path.into_inner();
    check_id("node id", &node_id)?;
    let value = read(&state, move |view| match view.profile(&node_id)? {
        Some(p) => Ok(views::profile(&p)),
        None => Err(ApiError::not_found("profile for node", &node_id)),
    })
    .await?;
    reply(value)
}

/// The artifact's bytes as text (invalid UTF-8 replaced), if this node holds it.
pub async fn artifact(state: web::Data<Explorer>, path: web::Path<String>) -> Reply {
    let cid = path.into_inner();
    check_id("cid", &cid)?;
    let value = read(&state, move |view| match view.read.artifact(&cid)? {
        Some(bytes) => Ok(object([
            ("cid", Value::Str(cid)),
            (
                "content",
                Value::Str(String::from_utf8_lossy(&bytes).into_owned()),
            ),
        ])),
        None => Err(ApiError::not_found("artifact", &cid)),
    })
    .await?;
    reply(value)
}

/// 400 for a query string that does not parse (a letter where a number goes), as JSON.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::bad(format!("bad query parameter: {err}")).into()
}

/// 404 for any other path under /api.
pub async fn unknown_route(req: actix_web::HttpRequest) -> Reply {
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("no route {}", req.path()),
    })
}

/// Records a node published, oldest first, filtered (at most 10,000).
pub async fn node_experiments(
    state: web::Data<Explorer>,
    path: web::Path<String>,
    q: web::Query<NodePageQuery>,
) -> Reply {
    let node_id = path.into_inner();
    check_id("node id", &node_id)?;
    let q = q.into_inner();
    let task = q.task_id.filter(|t| !t.is_empty());
    if let Some(t) = &task {
        check_id("task_id", t)?;
    }
    let filter = RecordFilter {
        task,
        status: status_filter(q.status.as_deref())?,
        gpu: q.gpu.filter(|g| !g.is_empty()),
        verified_only: q.verified_only.unwrap_or(false),
        frontier_only: q.frontier_only.unwrap_or(false),
    };
    let value = read(&state, move |view| {
        let (records, _) = filter.page(view, &node_id, 0, usize::MAX)?;
        Ok(Value::Array(records))
    })
    .await?;
    reply(value)
}

/// Which of a node's records a node page or list shows.
struct RecordFilter {
    task: Option<String>,
    status: Option<spore_spec::Status>,
    gpu: Option<String>,
    verified_only: bool,
    frontier_only: bool,
}

impl RecordFilter {
    /// The matching records of `node_id` (oldest first, of its newest 10,000) from `offset`,
    /// at most `limit`, and how many match in all.
    fn page(
        &self,
        view: &mut View,
        node_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<Value>, usize), ApiError> {
        let mut matched = Vec::new();
        let mut total = 0;
        for id in view.read.node_record_ids(node_id, 10_000)? {
            let Some(found) = view.find(&id)? else {
                continue;
            };
            let goal = view.goal(&found.entry.task_id)?;
            let wanted = self
                .task
                .as_deref()
                .is_none_or(|t| t == found.entry.task_id)
                && self.status.is_none_or(|s| s == found.record.status)
                && self
                    .gpu
                    .as_deref()
                    .is_none_or(|g| g == found.record.gpu_model)
                && (!self.verified_only || found.entry.verified)
                && (!self.frontier_only || found.entry.is_frontier(goal));
            if wanted {
                if total >= offset && matched.len() < limit {
                    matched.push(view.record(&found)?);
                }
                total += 1;
            }
        }
        Ok((matched, total))
    }
}

/// Feed events of one node, newest first.
pub async fn node_activity(
    state: web::Data<Explorer>,
    path: web::Path<String>,
    q: web::Query<LimitQuery>,
) -> Reply {
    let node_id = path.into_inner();
    check_id("node id", &node_id)?;
    let q = q.into_inner();
    let limit = clamp(q.limit, 50, 200);
    let value = read(&state, move |view| {
        let mut out = Vec::new();
        for id in view.read.node_recent_ids(&node_id, limit * 4)? {
            let Some(found) = view.find(&id)? else {
                continue;
            };
            if q.task_id
                .as_deref()
                .is_some_and(|t| !t.is_empty() && t != found.entry.task_id)
            {
                continue;
            }
            out.push(view.feed_event(&found)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(Value::Array(out))
    })
    .await?;
    reply(value)
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    task_id: Option<String>,
}

/// Records whose id or publisher id starts with `q`, or whose description, GPU or publisher name
/// contains it (case-insensitive), at most 20. Text matching looks at the newest 5,000 records of
/// the task (or the active one), so a search costs the same at any store size.
pub async fn search(state: web::Data<Explorer>, q: web::Query<SearchQuery>) -> Reply {
    let q = q.into_inner();
    let needle = q.q.unwrap_or_default().trim().to_string();
    if needle.chars().count() < 2 {
        return Err(ApiError::bad("q must have at least 2 characters"));
    }
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let mut ids: Vec<String> = Vec::new();
        if needle.chars().all(|c| c.is_ascii_hexdigit()) {
            let lower = needle.to_ascii_lowercase();
            ids.extend(view.read.ids_with_prefix(&lower, 20)?);
            if lower.len() == 64 || ids.len() < 20 {
                ids.extend(view.read.node_recent_ids(&lower, 20)?);
            }
        }
        if let Some(task) = resolve_task(view, pinned.as_deref(), q.task_id.as_deref())? {
            let lower = needle.to_lowercase();
            for id in view.read.recent_ids(&task, 5_000)? {
                if ids.len() >= 20 {
                    break;
                }
                let Some(found) = view.find(&id)? else {
                    continue;
                };
                let name = view
                    .profile(&found.record.node_id)?
                    .map(|p| p.display_name)
                    .unwrap_or_default();
                if [&found.record.description, &found.record.gpu_model, &name]
                    .iter()
                    .any(|text| text.to_lowercase().contains(&lower))
                {
                    ids.push(id);
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        ids.truncate(20);
        Ok(Value::Array(view.records(&ids)?))
    })
    .await?;
    reply(value)
}

#[derive(Deserialize)]
pub struct HotQuery {
    limit: Option<i64>,
}

/// Tasks by recent activity: over each task's 25 newest records, how many and how many keeps.
pub async fn tasks_hot(state: web::Data<Explorer>, q: web::Query<HotQuery>) -> Reply {
    let limit = clamp(q.limit, 10, 50);
    let value = read(&state, move |view| {
        let mut rows = Vec::new();
        for row in view.read.tasks()? {
            let task_id = row.task_id().to_string();
            let recent = view.read.recent_ids(&task_id, 25)?;
            let mut keeps = 0;
            let mut latest = None;
            for id in &recent {
                if let Some(entry) = view.read.index_entry(id)? {
                    keeps += i64::from(entry.status == spore_spec::Status::Keep);
                    latest = latest.max(Some(entry.timestamp));
                }
            }
            let best = view.best(&task_id)?;
            rows.push((
                (recent.len(), latest, task_id.clone()),
                object([
                    ("task_id", Value::Str(task_id)),
                    ("name", Value::Str(row.manifest.name.clone())),
                    ("task_type", Value::Str(row.manifest.task_type.clone())),
                    ("recent_experiment_count", Value::Int(recent.len() as i64)),
                    ("recent_keep_count", Value::Int(keeps)),
                    ("latest_activity", latest.map_or(Value::Null, Value::Int)),
                    ("best_val_bpb", views::float(best)),
                ]),
            ));
        }
        rows.sort_by(|a, b| (b.0 .1, b.0 .0, &b.0 .2).cmp(&(a.0 .1, a.0 .0, &a.0 .2)));
        rows.truncate(limit);
        Ok(Value::Array(rows.into_iter().map(|(_, v)| v).collect()))
    })
    .await?;
    reply(value)
}

#[derive(Deserialize)]
pub struct NodesQuery {
    task_id: Option<String>,
    activity: Option<String>,
    status: Option<String>,
    has_profile: Option<bool>,
    sort: Option<String>,
    limit: Option<i64>,
    q: Option<String>,
}

/// The node filters of `/api/nodes` and `/api/nodes/search`, checked.
struct NodeFilter {
    activity: Option<&'static str>,
    status: Option<spore_spec::Status>,
    has_profile: Option<bool>,
    needle: Option<String>,
}

fn status_filter(status: Option<&str>) -> Result<Option<spore_spec::Status>, ApiError> {
    match status.filter(|s| !s.is_empty() && *s != "all") {
        Some(s) => spore_spec::Status::parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::bad("status must be keep, discard, crash or all")),
        None => Ok(None),
    }
}

impl NodeFilter {
    fn new(q: &NodesQuery, needle: Option<String>) -> Result<NodeFilter, ApiError> {
        let activity = match q.activity.as_deref().filter(|a| !a.is_empty()) {
            None | Some("all") => None,
            Some(a) => Some(
                ["researcher", "verifier", "hybrid", "observer"]
                    .into_iter()
                    .find(|known| *known == a)
                    .ok_or_else(|| {
                        ApiError::bad(
                            "activity must be researcher, verifier, hybrid, observer or all",
                        )
                    })?,
            ),
        };
        Ok(NodeFilter {
            activity,
            status: status_filter(q.status.as_deref())?,
            has_profile: q.has_profile,
            needle,
        })
    }
}

/// Summaries of the nodes in scope (the task's publishers, or every known node without a task),
/// filtered, sorted and limited.
fn nodes_in_scope(
    view: &mut View,
    task: Option<&str>,
    filter: &NodeFilter,
    sort: &str,
    limit: usize,
) -> Result<Vec<Value>, ApiError> {
    let frontier = view.frontier_nodes_in(task)?;
    let mut rows = Vec::new();
    for (node_id, stats) in view.read.nodes_stats(task.unwrap_or(""))? {
        let all = match task {
            Some(_) => view.read.node_stats("", &node_id)?.unwrap_or_default(),
            None => stats.clone(), // the scope is all tasks already
        };
        if filter.activity.is_some_and(|a| a != views::activity(&all)) {
            continue;
        }
        if let Some(status) = filter.status {
            let n = match status {
                spore_spec::Status::Keep => stats.keep,
                spore_spec::Status::Discard => stats.discard,
                spore_spec::Status::Crash => stats.crash,
            };
            if n == 0 {
                continue;
            }
        }
        let profile = view.profile(&node_id)?;
        if filter.has_profile.is_some_and(|h| h != profile.is_some()) {
            continue;
        }
        if let Some(needle) = &filter.needle {
            let mut texts = vec![node_id.clone()];
            if let Some(p) = &profile {
                texts.extend([p.display_name.clone(), p.bio.clone(), p.website.clone()]);
            }
            texts.extend(stats.gpu_models.iter().cloned());
            if !texts.iter().any(|t| t.to_lowercase().contains(needle)) {
                continue;
            }
        }
        let frontier_count = frontier.get(&node_id).copied().unwrap_or(0) as i64;
        let key = match sort {
            "published" => (stats.count as i64, stats.last_seen),
            "frontier" => (frontier_count, stats.last_seen),
            _ => (stats.last_seen, stats.count as i64),
        };
        rows.push((key, node_id, stats, all));
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    rows.truncate(limit);
    let mut out = Vec::with_capacity(rows.len());
    for (_, node_id, scoped, all) in rows {
        out.push(view.node_summary(&node_id, task, &scoped, &all, &frontier)?);
    }
    Ok(out)
}

fn sort_order(sort: Option<&str>) -> Result<&'static str, ApiError> {
    match sort.filter(|s| !s.is_empty()) {
        None | Some("recent") => Ok("recent"),
        Some("published") => Ok("published"),
        Some("frontier") => Ok("frontier"),
        Some(_) => Err(ApiError::bad("sort must be recent, published or frontier")),
    }
}

/// Node summaries (reference §i), in the task's scope (the active task by default).
pub async fn nodes(state: web::Data<Explorer>, q: web::Query<NodesQuery>) -> Reply {
    let q = q.into_inner();
    let filter = NodeFilter::new(&q, None)?;
    let sort = sort_order(q.sort.as_deref())?;
    let limit = clamp(q.limit, 100, 500);
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let task = resolve_task(view, pinned.as_deref(), q.task_id.as_deref())?;
        Ok(Value::Array(nodes_in_scope(
            view,
            task.as_deref(),
            &filter,
            sort,
            limit,
        )?))
    })
    .await?;
    reply(value)
}

/// Nodes whose id, name, bio, website or GPU class contains `q` (case-insensitive).
pub async fn nodes_search(state: web::Data<Explorer>, q: web::Query<NodesQuery>) -> Reply {
    let q = q.into_inner();
    let needle = q.q.as_deref().unwrap_or_default().trim().to_lowercase();
    if needle.chars().count() < 2 {
        return Err(ApiError::bad("q must have at least 2 characters"));
    }
    let filter = NodeFilter::new(&q, Some(needle))?;
    let limit = clamp(q.limit, 20, 100);
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let task = resolve_task(view, pinned.as_deref(), q.task_id.as_deref())?;
        Ok(Value::Array(nodes_in_scope(
            view,
            task.as_deref(),
            &filter,
            "recent",
            limit,
        )?))
    })
    .await?;
    reply(value)
}

/// The filters of a node's records; the list (`/experiment`) ignores the paging.
#[derive(Deserialize)]
pub struct NodePageQuery {
    task_id: Option<String>,
    status: Option<String>,
    gpu: Option<String>,
    verified_only: Option<bool>,
    frontier_only: Option<bool>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// One node: its summary and a page of its records (oldest first) in the task's scope.
pub async fn node(
    state: web::Data<Explorer>,
    path: web::Path<String>,
    q: web::Query<NodePageQuery>,
) -> Reply {
    let node_id = path.into_inner();
    check_id("node id", &node_id)?;
    let q = q.into_inner();
    let status = status_filter(q.status.as_deref())?;
    let limit = clamp(q.limit, 100, 500);
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad("offset must not be negative"));
    }
    let offset = offset as usize;
    let pinned = state.pinned_task.get();
    let value = read(&state, move |view| {
        let task = resolve_task(view, pinned.as_deref(), q.task_id.as_deref())?;
        let all = view.read.node_stats("", &node_id)?;
        if all.is_none() && view.profile(&node_id)?.is_none() {
            return Err(ApiError::not_found("node", &node_id));
        }
        let all = all.unwrap_or_default();
        let scoped = match &task {
            Some(t) => view.read.node_stats(t, &node_id)?.unwrap_or_default(),
            None => all.clone(),
        };
        let frontier = view.frontier_nodes_in(task.as_deref())?;
        let summary = view.node_summary(&node_id, task.as_deref(), &scoped, &all, &frontier)?;
        let filter = RecordFilter {
            task,
            status,
            gpu: q.gpu.clone().filter(|g| !g.is_empty()),
            verified_only: q.verified_only.unwrap_or(false),
            frontier_only: q.frontier_only.unwrap_or(false),
        };
        let (matched, total) = filter.page(view, &node_id, offset, limit)?;
        let RecordFilter {
            task,
            status,
            gpu,
            verified_only,
            frontier_only,
        } = filter;
        Ok(object([
            ("node", summary),
            ("experiments", Value::Array(matched)),
            ("total_experiments", Value::Int(total as i64)),
            (
                "filters",
                object([
                    ("task_id", task.map_or(Value::Null, Value::Str)),
                    (
                        "status",
                        status.map_or(Value::Null, |s| Value::Str(s.as_str().to_string())),
                    ),
                    ("gpu", gpu.map_or(Value::Null, Value::Str)),
                    ("verified_only", Value::Bool(verified_only)),
                    ("frontier_only", Value::Bool(frontier_only)),
                    ("limit", Value::Int(limit as i64)),
                    ("offset", Value::Int(offset as i64)),
                ]),
            ),
        ]))
    })
    .await?;
    reply(value)
}
