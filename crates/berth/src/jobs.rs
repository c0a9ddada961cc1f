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
    let verb = if args.dry_run {
        "would reclaim"
    } else {
        "reclaimed"
    };
    let report = collector
        .collect(args.grace, args.dry_run, |digest, size| {
            println!("{verb} {digest} ({size} bytes)");
        })
        .await?;
    println!("{verb} {} blob(s), {} bytes", report.blobs, report.bytes);
    Ok(())
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    install: InstallArgs,

    /// How many of the newest events to look at.
    #[arg(long, default_value_t = 100)]
    limit: u32,

    /// Only events of this `action-type` (`PUSH`, `DELETE`).
    #[arg(long)]
    action: Option<String>,

    /// Show the webhooks instead: where each stands, and its dead letters.
    #[arg(long)]
    webhooks: bool,
}

/// Prints the newest events, oldest first, one EventBridge-shaped JSON object per line.
pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let install = args.install.open().await?;
    if args.webhooks {
        for webhook in install.metadata.webhooks().await? {
            let dead = install.metadata.dead_letters(&webhook.name, 20).await?;
            println!("{}", berth_server::webhooks::webhook_json(&webhook, &dead));
        }
        return Ok(());
    }
    for event in install.metadata.recent_events(args.limit).await? {
        let envelope =
            berth_server::events::envelope(&event, &args.install.account_id, &args.install.region);
        if let Some(action) = &args.action
            && envelope["detail"]["action-type"].as_str() != Some(action.as_str())
        {
            continue;
        }
        println!("{envelope}");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct QueueArgs {
    #[command(flatten)]
    install: InstallArgs,

    /// How many of the newest jobs to list.
    #[arg(long, default_value_t = 20)]
    limit: u32,

    /// Print JSON (one object per job) instead of a table.
    #[arg(long)]
    json: bool,

    /// Queue a job of this kind instead of listing (for operators and tests).
    #[arg(long)]
    enqueue: Option<String>,

    /// The queued job's payload (JSON).
    #[arg(long, default_value = "{}", requires = "enqueue")]
    payload: String,

    /// The queued job's attempts at most.
    #[arg(long, default_value_t = 3, requires = "enqueue")]
    max_attempts: i64,
}

/// Lists the queue (counts by kind and state, then the newest jobs), or
/// queues one job.
pub async fn queue(args: QueueArgs) -> anyhow::Result<()> {
    let install = args.install.open().await?;
    let now = berth_store::now_millis();
    if let Some(kind) = &args.enqueue {
        serde_json::from_str::<serde_json::Value>(&args.payload)
            .map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"))?;
        let job = berth_store::NewJob {
            kind,
            payload: &args.payload,
            singleton: None,
            max_attempts: args.max_attempts.max(1),
            run_after: now,
        };
        let id = install.metadata.enqueue_job(&job, now).await?;
        println!("queued job {}", id.unwrap_or_default());
        return Ok(());
    }
    let jobs = install.metadata.recent_jobs(args.limit).await?;
    if args.json {
        for job in jobs {
            let line = serde_json::json!({
                "id": job.id, "kind": job.kind, "state": job.state, "attempts": job.attempts,
                "max_attempts": job.max_attempts, "worker": job.worker,
                "last_error": job.last_error, "created_at": job.created_at,
                "finished_at": job.finished_at, "run_after": job.run_after,
            });
            println!("{line}");
        }
        return Ok(());
    }
    for (kind, state, n) in install.metadata.job_counts().await? {
        println!("{kind:<20} {state:<8} {n}");
    }
    println!();
    println!(
        "{:>8}  {:<20} {:<8} {:>8}  last error",
        "id", "kind", "state", "attempts"
    );
    for job in jobs {
        println!(
            "{:>8}  {:<20} {:<8} {:>4}/{:<3}  {}",
            job.id,
            job.kind,
            job.state,
            job.attempts,
            job.max_attempts,
            job.last_error.unwrap_or_default()
        );
    }
    Ok(())
}

pub fn registry(install: &Install, args: &InstallArgs) -> Arc<Registry> {
    let registry = Arc::new(Registry::new(
        install.metadata.clone(),
        install.blobs.clone(),
        RegistryConfig {
            registry_id: args.account_id.clone(),
            ..RegistryConfig::default()
        },
    ));
    if let Some(tier) = &install.archive_tier {
        registry.on_archive_tier(tier.clone());
    }
    registry
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
        action,
    } in &expired
    {
        let what = match action {
            berth_core::lifecycle::Action::Expire => verb,
            berth_core::lifecycle::Action::Archive if args.dry_run => "would archive",
            berth_core::lifecycle::Action::Archive => "archived",
        };
        println!(
            "{what} {repository}@{} tags={:?} (rule {rule_priority})",
            image.digest, image.tags
        );
    }
    println!("{} image(s) {verb}", expired.len());
    Ok(())
}
