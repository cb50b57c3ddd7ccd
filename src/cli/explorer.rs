//! `spored explorer`: the explorer over a data dir, without joining the network (no peers, no
//! research); until SIGINT or SIGTERM. A running node already serves its own explorer.

use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use spore_actors::store::StoreError;
use spore_actors::Store;

use super::Context;

#[derive(clap::Args, Debug)]
pub struct ExplorerArgs {
    /// Explorer address (default: the config's web_host)
    #[arg(long)]
    pub web_host: Option<String>,
    /// Explorer port (default: the config's web_port; 0 lets the OS choose)
    #[arg(long, short = 'w')]
    pub web_port: Option<u16>,
    /// Task shown when none is asked for (default: the most active)
    #[arg(long)]
    pub task: Option<String>,
}

pub fn run(ctx: &Context, args: ExplorerArgs) -> Result<()> {
    let store = match Store::open(&ctx.data_dir.store()) {
        Ok(store) => Arc::new(store),
        Err(StoreError::InUse { .. }) => bail!(
            "a node is running on {}: it serves the explorer itself (its `explorer on` line)",
            ctx.data_dir.root.display()
        ),
        Err(e) => return Err(e).context("opening the store"),
    };
    let node_id = ctx
        .data_dir
        .load_identity()
        .map(|i| i.node_id())
        .unwrap_or_default();
    let host = args.web_host.unwrap_or_else(|| ctx.config.web_host.clone());
    let port = args.web_port.unwrap_or(ctx.config.web_port);
    let pinned = args
        .task
        .or_else(|| (!ctx.config.task_id.is_empty()).then(|| ctx.config.task_id.clone()));
    let addr = super::run::explorer_addr(&host, port)?;
    actix_rt::System::new().block_on(async move {
        let explorer = spore_web::Explorer {
            store,
            node_id,
            pinned_task: spore_actors::setting::Setting::new(pinned),
            node: None,
            // no network: nothing new arrives while this serves
            events: spore_actors::store_writer::quiet_events(),
        };
        let (handle, bound) = spore_web::serve(addr, explorer)
            .with_context(|| format!("cannot serve the explorer on {addr}"))?;
        spore_actors::say!("explorer on http://{bound}");
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        handle.stop(true).await;
        Ok(())
    })
}
