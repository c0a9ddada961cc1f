//! On-demand runs of the background jobs `berth serve` runs on its own:
//! `berth lifecycle` applies lifecycle policies now.

use std::sync::Arc;

use anyhow::Context;
use berth_core::RepositoryName;
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
