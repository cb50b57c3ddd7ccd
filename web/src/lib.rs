//! spore-web: the explorer. actix-web serves the JSON API ([`api`]) and the embedded UI off the
//! node's store and actor registry, in the node's own process; `spored explorer` serves a data
//! dir read-only without joining the network.

pub mod api;
pub mod live;
pub mod metrics;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use spore_actors::messages::GetPeers;
use spore_actors::Store;

/// What the handlers share: the store (read snapshots), the node's identity and, in a running
/// node, its actor registry (peer counts, metrics).
pub struct Explorer {
    pub store: Arc<Store>,
    pub node_id: String,
    /// The task config pins (`spored task use` changes it while the node runs).
    pub pinned_task: spore_actors::setting::Setting<Option<String>>,
    /// The running node's actors; `None` when serving a data dir without a network.
    pub node: Option<spore_actors::registry::Registry>,
    /// The node's store events (its `StoreWriter` publishes them after each commit); live views
    /// follow them. A sender nobody sends on (no node) gives a quiet live stream.
    pub events: tokio::sync::broadcast::Sender<spore_actors::store_writer::EventBatch>,
}

impl Explorer {
    /// Connected peers (0 when serving a data dir without a network).
    pub async fn peer_count(&self) -> usize {
        match &self.node {
            Some(node) => node
                .peers
                .send(GetPeers)
                .await
                .map_or(0, |peers| peers.iter().filter(|p| p.connected).count()),
            None => 0,
        }
    }
}

/// What the handlers share: the explorer and its live hub.
pub struct State {
    pub explorer: Explorer,
    pub live: live::Live,
}

impl std::ops::Deref for State {
    type Target = Explorer;
    fn deref(&self) -> &Explorer {
        &self.explorer
    }
}

impl State {
    /// Browsers following live updates now.
    pub fn live_clients(&self) -> usize {
        self.live.clients()
    }
}

/// The routes, for `App::configure` (tests mount them on a test server).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(api::query_error))
        .route("/", web::get().to(index))
        .route("/ui/app.js", web::get().to(app_js))
        .route("/ui/style.css", web::get().to(style_css))
        .route("/api/openapi.json", web::get().to(openapi))
        .route("/api/events", web::get().to(events))
        .route("/api/stat", web::get().to(api::stat))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/healthz", web::get().to(metrics::healthz))
        .route("/api/training", web::get().to(api::training))
        .route("/api/tasks", web::get().to(api::tasks))
        .route("/api/tasks/hot", web::get().to(api::tasks_hot))
        .route("/api/nodes", web::get().to(api::nodes))
        .route("/api/nodes/search", web::get().to(api::nodes_search))
        .route("/api/node/{node_id}", web::get().to(api::node))
        .route("/api/task/{task_id}", web::get().to(api::task))
        .route("/api/task/{task_id}/feed", web::get().to(api::task_feed))
        .route("/api/feed", web::get().to(api::feed))
        .route("/api/keeps/recent", web::get().to(api::keeps_recent))
        .route("/api/graph", web::get().to(api::graph))
        .route("/api/frontier", web::get().to(api::frontier))
        .route("/api/progress", web::get().to(api::progress))
        .route("/api/experiment/{cid}/curve", web::get().to(api::curve))
        .route("/api/experiment/{cid}", web::get().to(api::experiment))
        .route(
            "/api/experiment/{cid}/events",
            web::get().to(api::experiment_events),
        )
        .route(
            "/api/experiment/{cid}/ancestor",
            web::get().to(api::ancestor),
        )
        .route(
            "/api/experiment/{cid}/children",
            web::get().to(api::children),
        )
        .route("/api/recent", web::get().to(api::recent))
        .route(
            "/api/node/{node_id}/profile",
            web::get().to(api::node_profile),
        )
        .route(
            "/api/node/{node_id}/experiment",
            web::get().to(api::node_experiments),
        )
        .route(
            "/api/node/{node_id}/activity",
            web::get().to(api::node_activity),
        )
        .route("/api/search", web::get().to(api::search))
        .route("/api/artifact/{cid}", web::get().to(api::artifact))
        .default_service(web::route().to(api::unknown_route));
}

/// Binds `addr` and serves on the current actix System until the System ends or the returned
/// handle stops it; also returns the bound address (port 0 gets one from the OS).
pub fn serve(
    addr: SocketAddr,
    explorer: Explorer,
) -> std::io::Result<(actix_web::dev::ServerHandle, SocketAddr)> {
    let live = live::Live::start(explorer.store.clone(), &explorer.events);
    let data = web::Data::new(State { explorer, live });
    // on a loopback address, only requests that name a loopback host: a web page whose name a
    // DNS-rebinding attacker points at 127.0.0.1 sends its own name and is refused
    let loopback = addr.ip().is_loopback();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::from_fn(
                move |req: actix_web::dev::ServiceRequest, next| host_rule(loopback, req, next),
            ))
            .configure(routes)
    })
    .workers(2)
    .disable_signals()
    // live streams never end by themselves: give them 2 s, not 30, when the node stops
    .shutdown_timeout(2)
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok((handle, bound))
}

/// Browsers following the live stream at most; more are answered 503 (each holds a connection
/// and a renderer's queue).
pub const MAX_LIVE_CLIENTS: usize = 64;

async fn events(state: web::Data<State>) -> HttpResponse {
    if state.live.clients() >= MAX_LIVE_CLIENTS {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "10"))
            .body("too many live clients");
    }
    state.live.stream()
}

/// Refuses (421) a request whose `Host` is not a loopback name when the explorer is bound to a
/// loopback address (`loopback`); a request without `Host` (HTTP/1.0 tools) passes.
async fn host_rule(
    loopback: bool,
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse, actix_web::Error> {
    // a Host that is not text is no loopback name either
    let host = req
        .headers()
        .get("host")
        .map(|h| h.to_str().unwrap_or("\u{fffd}"));
    if loopback && host.is_some_and(|h| !is_loopback_host(h)) {
        let refused = HttpResponse::MisdirectedRequest()
            .body("this explorer answers only to localhost / 127.0.0.1 / [::1]");
        return Ok(req.into_response(refused));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Whether a `Host` header value (`name[:port]`, `[v6][:port]`) names this machine's loopback.
pub fn is_loopback_host(value: &str) -> bool {
    let host = if let Some(rest) = value.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, tail)) if tail.is_empty() || tail.starts_with(':') => inside,
            _ => return false,
        }
    } else {
        value.rsplit_once(':').map_or(value, |(h, _)| h)
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let host = host.as_str();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What the page may load: only its own script, style and API. Record and profile strings are
/// placed as text anyway; this also stops any inline script or handler should one ever slip in,
/// and keeps profiles' avatar URLs from making the browser call strangers' servers.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// One embedded UI file (no CDN: the explorer works offline).
fn embedded(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

async fn index() -> HttpResponse {
    embedded("text/html; charset=utf-8", include_str!("../ui/index.html"))
}

async fn app_js() -> HttpResponse {
    embedded(
        "text/javascript; charset=utf-8",
        include_str!("../ui/app.js"),
    )
}

async fn style_css() -> HttpResponse {
    embedded("text/css; charset=utf-8", include_str!("../ui/style.css"))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("../ui/openapi.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart_from_rebound_names() {
        for ok in [
            "localhost",
            "localhost.",
            "spored.localhost:8470",
            "localhost:8470",
            "LOCALHOST:1",
            "127.0.0.1",
            "127.0.0.1:8470",
            "127.8.9.10:80",
            "[::1]",
            "[::1]:8470",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8470",
            "localhost.evil.example",
            "evillocalhost",
            "\u{fffd}",
            "10.0.0.1:8470",
            "[::2]:80",
            "[::1]x",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
