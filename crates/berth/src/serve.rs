//! `berth serve`: configuration, storage set-up, the HTTP listener, background
//! work and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_server::{Registry, RegistryConfig};
use berth_store::{FsBlobStore, SqliteStore};
use clap::Args;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:5000")]
    listen: SocketAddr,

    /// Directory holding the metadata database and the blobs.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = "./berth-data")]
    data_dir: PathBuf,

    /// An upload not written to for this long is abandoned and its data removed (e.g. `24h`, `90s`).
    #[arg(long, env = "BERTH_UPLOAD_TIMEOUT", default_value = "24h", value_parser = humantime::parse_duration)]
    upload_timeout: Duration,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let metadata = SqliteStore::open(&data_dir.join("metadata.db"))
        .await
        .context("opening the metadata database")?;
    let blobs = FsBlobStore::open(data_dir.join("blobs")).context("opening the blob store")?;
    let config = RegistryConfig {
        upload_timeout: args.upload_timeout,
    };
    let registry = Arc::new(Registry::new(Arc::new(metadata), Arc::new(blobs), config));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("berth is serving the OCI registry API on http://{address}/v2/");
    println!("data: {}", data_dir.display());
    println!(
        "push: skopeo copy --dest-tls-verify=false oci:DIR:TAG docker://{address}/REPOSITORY:TAG"
    );

    let cleaner = tokio::spawn(clean_uploads(registry.clone()));
    axum::serve(listener, berth_server::app(registry))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    cleaner.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Removes abandoned uploads, checking a few times per upload timeout.
async fn clean_uploads(registry: Arc<Registry>) {
    let every = (registry.config().upload_timeout / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        match registry.clean_stale_uploads().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed abandoned uploads"),
            Err(e) => tracing::warn!(error = %e, "upload clean-up failed"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM; requests in flight then finish.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
