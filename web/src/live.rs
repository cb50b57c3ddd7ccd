//! Live updates for browsers: Server-Sent Events on `/api/events`. One task renders each newly
//! stored record once (`{"event": "experiment", "data": <record>}`, the reference's websocket
//! message) and fans it out to every client through a bounded channel; a client too slow to keep
//! up skips what it missed and gets a `resync` event telling it to reload.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use spore_actors::Store;
use spore_spec::json::{self, object, Value};
use tokio::sync::broadcast;

use crate::views::{self, View};

pub struct Live {
    rendered: broadcast::Sender<Arc<str>>,
    clients: Arc<AtomicUsize>,
}

impl Live {
    /// Starts the renderer on the current actix System: ids from `announce` in, events out.
    pub fn start(store: Arc<Store>, announce: &broadcast::Sender<Arc<[String]>>) -> Live {
        let (rendered, _) = broadcast::channel::<Arc<str>>(1024);
        let mut ids = announce.subscribe();
        let out = rendered.clone();
        actix_web::rt::spawn(async move {
            loop {
                let batch = match ids.recv().await {
                    Ok(batch) => batch,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
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
                let chunk = match rx.recv().await {
                    Ok(event) => format!("data: {event}\n\n"),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        "data: {\"event\":\"resync\"}\n\n".to_string()
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
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

fn render(store: &Store, ids: &[String]) -> Vec<Arc<str>> {
    let Ok(read) = store.read() else {
        return vec![];
    };
    let mut view = View::new(&read);
    let mut out = Vec::new();
    for id in ids {
        let Ok(Some(found)) = view.find(id) else {
            continue;
        };
        let Ok(record) = view.record(&found) else {
            continue;
        };
        let event = object([("event", Value::Str("experiment".into())), ("data", record)]);
        out.push(Arc::from(json::to_wire(&views::finite(event))));
    }
    out
}
