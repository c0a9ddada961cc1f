//! On-demand runs of the background jobs `berth serve` runs on its own:
//! `berth lifecycle` applies lifecycle policies now, `berth gc` reclaims
//! unreferenced blobs now. Both are safe while servers run. `berth events`
//! prints what was recorded.

use std::sync::Arc;

use anyhow::Context;
use berth_core::RepositoryName;
use berth_server::gc::Collector;
use berth_server::lifecycle::{Expired, Lifecycle};
use berth_server::{Registry, RegistryConfig};
use clap::Args;

use crate::serve::{Install, InstallArgs};

#[derive(Args, Debug)]
pub struct LifecycleArgs {
    #[command(flatten)]
    install: InstallArgs,

    /// Only this repository (default: every repository with a policy).
    #[arg(long)]
    repository: Option<String>,

    /// Say what would expire; delete nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    install: InstallArgs,

    /// How long a blob stays after nothing references it any more.
    #[arg(long, env = "BERTH_GC_GRACE", default_value = "24h", value_parser = humantime::parse_duration)]
    grace: std::time::Duration,

    /// Say what would be reclaimed; delete nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn gc(args: GcArgs) -> anyhow::Result<()> {
    let install = args.install.open().await?;
    let collector = Collector::new(install.metadata.clone(), install.blobs.clone());
    let report = collector.collect(args.grace, args.dry_run).await?;
    let verb = if args.dry_run {
        "would reclaim"
    } else {
        "reclaimed"
    };
    for (digest, size) in &report.blobs {
        println!("{verb} {digest} ({size} bytes)");
    }
    println!(
        "{verb} {} blob(s), {} bytes",
        report.blobs.len(),
        report.bytes()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    install: InstallArgs,

    /// How many of the newest events to print.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

/// Prints the newest events, oldest first, one EventBridge-shaped JSON object per line.
pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let install = args.install.open().await?;
    for event in install.metadata.recent_events(args.limit).await? {
        let envelope =
            berth_server::events::envelope(&event, &args.install.account_id, &args.install.region);
        println!("{envelope}");
    }
    Ok(())
}

fn registry(install: &Install, args: &InstallArgs) -> Arc<Registry> {
    Arc::new(Registry::new(
        install.metadata.clone(),
        install.blobs.clone(),
        RegistryConfig {
            registry_id: args.account_id.clone(),
            ..RegistryConfig::default()
        },
    ))
}

pub async fn lifecycle(args: LifecycleArgs) -> anyhow::Result<()> {
    let install = args.install.open().await?;
    let lifecycle = Lifecycle::new(install.metadata.clone(), registry(&install, &args.install));
    let now = berth_store::now_millis();
    let expired = match &args.repository {
        Some(name) => {
            let name: RepositoryName = name
                .parse()
                .with_context(|| format!("'{name}' is not a repository name"))?;
            lifecycle.enforce(&name, now, args.dry_run).await?
        }
        None => lifecycle.enforce_all(now, args.dry_run).await?,
    };
    let verb = if args.dry_run {
        "would expire"
    } else {
        "expired"
    };
    for Expired {
        repository,
        image,
        rule_priority,
    } in &expired
    {
        println!(
            "{verb} {repository}@{} tags={:?} (rule {rule_priority})",
            image.digest, image.tags
        );
    }
    println!("{} image(s) {verb}", expired.len());
    Ok(())
}
