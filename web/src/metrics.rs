//! `/metrics` (Prometheus text format 0.0.4) and `/healthz`, served with the explorer and under
//! its bind rules (loopback unless `web_host` says otherwise, Host header checked).
//! docs/operations.md lists every series.

use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use spore_actors::legacy::LegacyPeerCount;

use crate::State as Explorer;

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its help, type and samples (`labels` is `k="v",…` or empty).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let value = if value.is_finite() {
            format!("{value}")
        } else {
            "NaN".into()
        };
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn one(value: f64) -> Vec<(String, f64)> {
    vec![(String::new(), value)]
}

pub async fn metrics(state: web::Data<Explorer>) -> HttpResponse {
    let store = state.store.clone();
    let counts = web::block(move || {
        #[allow(clippy::disallowed_methods)] // on a blocking thread
        store.read()?.object_counts()
    })
    .await;
    let counts = match counts {
        Ok(Ok(counts)) => counts,
        Ok(Err(e)) => {
            return HttpResponse::ServiceUnavailable().body(format!("store unreadable: {e}\n"))
        }
        Err(e) => return HttpResponse::ServiceUnavailable().body(format!("busy: {e}\n")),
    };
    let mut out = String::new();
    family(
        &mut out,
        "spored_info",
        "gauge",
        "This node: its id and version (always 1).",
        &[(
            format!(
                "node_id=\"{}\",version=\"{}\"",
                label(&state.node_id),
                label(&spore_actors::auto_operator::version())
            ),
            1.0,
        )],
    );
    let libp2p = state.peer_count().await;
    let reference = match &state.node {
        Some(node) => node.legacy.send(LegacyPeerCount).await.unwrap_or(0),
        None => 0,
    };
    family(
        &mut out,
        "spored_peers",
        "gauge",
        "Connected peers by transport.",
        &[
            ("transport=\"libp2p\"".into(), libp2p as f64),
            ("transport=\"reference\"".into(), reference as f64),
        ],
    );
    family(
        &mut out,
        "spored_objects",
        "gauge",
        "Objects in the store by kind (held: records waiting for their parent).",
        &counts
            .iter()
            .map(|(kind, n)| (format!("kind=\"{kind}\""), *n as f64))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "spored_store_bytes",
        "gauge",
        "Size of the store's file.",
        &one(state.store.file_size() as f64),
    );
    family(
        &mut out,
        "spored_sse_clients",
        "gauge",
        "Browsers following the explorer's live stream.",
        &one(state.live_clients() as f64),
    );
    if let Some(node) = &state.node {
        let m = &node.metrics;
        family(
            &mut out,
            "spored_ingested_total",
            "counter",
            "Objects ingested, by origin and outcome (rejected_*: refused, by reason).",
            &m.ingested()
                .into_iter()
                .map(|((origin, outcome), n)| {
                    (
                        format!("origin=\"{origin}\",outcome=\"{outcome}\""),
                        n as f64,
                    )
                })
                .collect::<Vec<_>>(),
        );
        family(
            &mut out,
            "spored_experiments_total",
            "counter",
            "Experiments this node ran, by status (interrupted: stopped, never published).",
            &m.experiments()
                .into_iter()
                .map(|(status, n)| (format!("status=\"{status}\""), n as f64))
                .collect::<Vec<_>>(),
        );
        family(
            &mut out,
            "spored_verifier_queue",
            "gauge",
            "Reruns and challenge answers waiting for the verifier.",
            &one(m.verifier_queue() as f64),
        );
        family(
            &mut out,
            "spored_training_tokens_per_second",
            "gauge",
            "Training speed of the last experiment this node finished.",
            &one(m.tokens_per_sec()),
        );
        let age = m
            .last_sync_page()
            .map_or(f64::NAN, |t| (spore_actors::unix_now() - t).max(0) as f64);
        family(
            &mut out,
            "spored_sync_last_page_age_seconds",
            "gauge",
            "Seconds since the last sync page from a peer was stored (NaN: none yet).",
            &one(age),
        );
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}

/// 200 `ok` when the store answers (and the node is not stopping), else 503 with the reason.
pub async fn healthz(state: web::Data<Explorer>) -> HttpResponse {
    if state.node.as_ref().is_some_and(|n| n.stopping.is_set()) {
        return HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE).body("stopping\n");
    }
    let store = state.store.clone();
    let readable = web::block(move || {
        #[allow(clippy::disallowed_methods)] // on a blocking thread
        store.read().and_then(|read| read.task_count())
    })
    .await;
    match readable {
        Ok(Ok(_)) => HttpResponse::Ok().content_type("text/plain").body("ok\n"),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable().body(format!("store unreadable: {e}\n")),
        Err(e) => HttpResponse::ServiceUnavailable().body(format!("busy: {e}\n")),
    }
}
