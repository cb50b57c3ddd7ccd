//! Live updates for browsers: Server-Sent Events on `/api/events`. One task follows the node's
//! store events and renders each once: a newly stored record as `{"event": "experiment", "data":
//! <record>}` (the reference's websocket message), a changed verdict as `{"event": "verdict",
//! "data": <record>}`, a task or profile as `{"event": "task"|"profile", "id": …}`; it fans them out
//! to every client through a bounded channel. Nothing is skipped silently: when the renderer
//! itself falls behind the store's events, or a client falls behind the renderer, the clients
//! concerned get a `resync` event telling them to reload what they show.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use spore_actors::store_writer::{EventBatch, NodeEvent};
use spore_actors::Store;
use spore_spec::json::{self, object, Value};
use tokio::sync::broadcast;

use crate::views::{self, View};

pub struct Live {
    rendered: broadcast::Sender<Arc<str>>,
    clients: Arc<AtomicUsize>,
}

impl Live {
    /// Starts the renderer on the current actix System: store events in, browser events out.
    pub fn start(store: Arc<Store>, events: &broadcast::Sender<EventBatch>) -> Live {
        let (rendered, _) = broadcast::channel::<Arc<str>>(1024);
        let mut events = events.subscribe();
        let out = rendered.clone();
        actix_web::rt::spawn(async move {
            loop {
                let batch = match events.recv().await {
                    Ok(batch) => batch,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = out.send(Arc::from(RESYNC));
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if out.receiver_count() == 0 {
                    continue; // nobody watching (a relay syncing 100k records, say)
                }
                let store = store.clone();
                let events = web::block(move || render(&store, &batch)).await;
                for event in events.into_iter().flatten() {
                    let _ = out.send(event);
                }
            }
        });
        Live {
            rendered,
            clients: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// The SSE response for one client.
    pub fn stream(&self) -> HttpResponse {
        let rx = self.rendered.subscribe();
        let guard = ClientGuard::new(self.clients.clone());
        let hello: Arc<str> = Arc::from(": live\n\n");
        let stream = futures::stream::unfold(
            (rx, guard, Some(hello)),
            |(mut rx, guard, first)| async move {
                if let Some(first) = first {
                    return Some((
                        Ok::<_, actix_web::Error>(web::Bytes::from(first.to_string())),
                        (rx, guard, None),
                    ));
                }
                // a comment now and then when nothing happens: a client that went away is
                // noticed when a write fails, and frees its place (`MAX_LIVE_CLIENTS`). The
                // first write after it left may still succeed (its reset comes back), so that
                // takes up to two keep-alives
                let next = tokio::time::timeout(KEEP_ALIVE, rx.recv()).await;
                let chunk = match next {
                    Err(_) => ": keep-alive\n\n".to_string(),
                    Ok(Ok(event)) => format!("data: {event}\n\n"),
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                        format!("data: {RESYNC}\n\n")
                    }
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                };
                Some((Ok(web::Bytes::from(chunk)), (rx, guard, None)))
            },
        );
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .streaming(stream)
    }
}

/// A live stream with nothing to send sends a comment this often.
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// Tells a client it missed events and should reload what it shows.
const RESYNC: &str = r#"{"event":"resync"}"#;

/// Counts a client while its stream lives.
struct ClientGuard(Arc<AtomicUsize>);

impl ClientGuard {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        ClientGuard(count)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs on a blocking thread (`web::block`).
#[allow(clippy::disallowed_methods)]
fn render(store: &Store, events: &[NodeEvent]) -> Vec<Arc<str>> {
    let Ok(read) = store.read() else {
        // the clients cannot be told what changed: they reload instead
        return vec![Arc::from(RESYNC)];
    };
    let mut view = View::new(&read);
    let mut out = Vec::new();
    let mut record = |kind: &str, id: &str| {
        let Ok(Some(found)) = view.find(id) else {
            return;
        };
        let Ok(record) = view.record(&found) else {
            return;
        };
        let event = object([("event", Value::Str(kind.into())), ("data", record)]);
        out.push(Arc::from(json::to_wire(&views::finite(event))));
    };
    let mut named = Vec::new();
    for event in events {
        match event {
            NodeEvent::RecordAccepted { id, .. } => record("experiment", id),
            NodeEvent::VerdictChanged { record: id } => record("verdict", id),
            NodeEvent::TaskStored { task_id } => named.push(("task", task_id)),
            NodeEvent::ProfileStored { node_id } => named.push(("profile", node_id)),
            NodeEvent::ArtifactStored { .. } | NodeEvent::ControlAccepted { .. } => {}
        }
    }
    for (kind, id) in named {
        let event = object([
            ("event", Value::Str(kind.into())),
            ("id", Value::Str(id.clone())),
        ]);
        out.push(Arc::from(json::to_wire(&event)));
    }
    out
}
