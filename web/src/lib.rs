//! spore-web: the explorer. actix-web serves the JSON API ([`api`]) and the embedded UI off the
//! node's store and actor registry, in the node's own process; `spored explorer` serves a data
//! dir read-only without joining the network.

pub mod api;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use spore_actors::messages::GetPeers;
use spore_actors::peer_manager::PeerManager;
use spore_actors::Store;

/// What the handlers share: the store (read snapshots), the node's identity and, in a running
/// node, the PeerManager for peer counts.
pub struct Explorer {
    pub store: Arc<Store>,
    pub node_id: String,
    pub pinned_task: Option<String>,
    pub peers: Option<actix::Addr<PeerManager>>,
}

impl Explorer {
    /// Connected peers (0 when serving a data dir without a network).
    pub async fn peer_count(&self) -> usize {
        match &self.peers {
            Some(addr) => addr
                .send(GetPeers)
                .await
                .map_or(0, |peers| peers.iter().filter(|p| p.connected).count()),
            None => 0,
        }
    }

    /// Browsers following live updates (none until the live stream exists).
    pub fn live_clients(&self) -> usize {
        0
    }
}

/// The routes, for `App::configure` (tests mount them on a test server).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(api::query_error))
        .route("/", web::get().to(index))
        .route("/api/openapi.json", web::get().to(openapi))
        .route("/api/stat", web::get().to(api::stat))
        .route("/api/tasks", web::get().to(api::tasks))
        .route("/api/task/{task_id}", web::get().to(api::task))
        .route("/api/task/{task_id}/feed", web::get().to(api::task_feed))
        .route("/api/feed", web::get().to(api::feed))
        .route("/api/keeps/recent", web::get().to(api::keeps_recent))
        .route("/api/graph", web::get().to(api::graph))
        .route("/api/frontier", web::get().to(api::frontier))
        .route("/api/experiment/{cid}", web::get().to(api::experiment))
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
        .route("/api/artifact/{cid}", web::get().to(api::artifact))
        .default_service(web::route().to(api::unknown_route));
}

/// Binds `addr` and starts serving on the current actix System; the returned server stops
/// with the System (or `handle().stop()`).
pub fn serve(
    addr: SocketAddr,
    explorer: Explorer,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr)> {
    let data = web::Data::new(explorer);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(2)
        .disable_signals()
        .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    Ok((server.run(), bound))
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("../ui/index.html"))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("../ui/openapi.json"))
}
