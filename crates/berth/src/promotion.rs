//! `berth promotion`: scan-gated promotion rules and their decisions, on an
//! install's database (the same rules the `BerthRegistry_20261130` API
//! operations manage).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_server::promotion::{Ignored, Promotion, PromotionRule};
use berth_server::scanning::{Scanning, ScanningSettings};
use clap::{Args, Subcommand};

use crate::serve::InstallArgs;

#[derive(Args, Debug)]
pub struct PromotionArgs {
    #[command(subcommand)]
    command: PromotionCommand,
}

#[derive(Subcommand, Debug)]
enum PromotionCommand {
    /// Add a rule, or replace the rule of the same name.
    PutRule {
        #[command(flatten)]
        install: InstallArgs,
        #[arg(long)]
        name: String,
        /// Wildcard filter on source repositories (`staging/*`).
        #[arg(long)]
        source: String,
        /// Destination repository; `{1}` … are what the source's `*`s matched (`approved/{1}`).
        #[arg(long)]
        destination: String,
        /// At most N findings of a severity (`CRITICAL=0`, `HIGH=5`); repeatable.
        #[arg(long = "max", value_name = "SEVERITY=N")]
        max: Vec<String>,
        /// Do not count an advisory until a date: `ID=YYYY-MM-DD:reason`; repeatable.
        #[arg(long = "ignore", value_name = "ID=DATE:REASON")]
        ignore: Vec<String>,
        /// How long an approved image stays in the destination.
        #[arg(long, default_value = "30days", value_parser = humantime::parse_duration)]
        lifetime: Duration,
        /// Untag approved images when their lifetime ends, instead of deleting them.
        #[arg(long)]
        untag: bool,
        /// Keep an approved image when a rescan fails the gate.
        #[arg(long)]
        no_revoke: bool,
    },
    /// List the rules.
    Rules {
        #[command(flatten)]
        install: InstallArgs,
    },
    /// Remove a rule.
    DeleteRule {
        #[command(flatten)]
        install: InstallArgs,
        name: String,
    },
    /// List decisions (approved, rejected and why, expired, revoked), newest first.
    List {
        #[command(flatten)]
        install: InstallArgs,
        /// Only images of this source repository.
        #[arg(long)]
        repository: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

async fn service(args: &InstallArgs) -> anyhow::Result<Promotion> {
    let install = args.open().await?;
    let registry = crate::jobs::registry(&install, args);
    let scanning = Arc::new(Scanning::new(
        install.metadata.clone(),
        registry.clone(),
        ScanningSettings::default(),
    ));
    Ok(Promotion::new(install.metadata.clone(), registry, scanning))
}

fn parse_ignore(text: &str) -> anyhow::Result<Ignored> {
    let (id, rest) = text
        .split_once('=')
        .with_context(|| format!("--ignore {text}: expected ID=YYYY-MM-DD:REASON"))?;
    let (date, reason) = rest.split_once(':').unwrap_or((rest, ""));
    let until = humantime::parse_rfc3339_weak(&format!("{date} 00:00:00"))
        .with_context(|| format!("--ignore {text}: '{date}' is not a date"))?;
    let millis = until
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Ok(Ignored {
        id: id.to_string(),
        expires_at: millis,
        reason: reason.to_string(),
    })
}

pub async fn run(args: PromotionArgs) -> anyhow::Result<()> {
    match args.command {
        PromotionCommand::PutRule {
            install,
            name,
            source,
            destination,
            max,
            ignore,
            lifetime,
            untag,
            no_revoke,
        } => {
            let mut max_findings = std::collections::BTreeMap::new();
            for entry in &max {
                let Some((severity, n)) = entry.split_once('=') else {
                    bail!("--max {entry}: expected SEVERITY=N");
                };
                let n: u64 = n
                    .parse()
                    .with_context(|| format!("--max {entry}: N is a number"))?;
                max_findings.insert(severity.to_ascii_uppercase(), n);
            }
            let rule = PromotionRule {
                name,
                source,
                destination,
                max_findings,
                ignored: ignore
                    .iter()
                    .map(|i| parse_ignore(i))
                    .collect::<Result<_, _>>()?,
                lifetime_seconds: lifetime.as_secs(),
                on_expiry: if untag { "UNTAG" } else { "DELETE" }.into(),
                revoke_on_failure: !no_revoke,
            };
            let rule = service(&install).await?.put_rule(rule).await?;
            println!("{}", berth_server::ecr::extension::rule_json(&rule));
        }
        PromotionCommand::Rules { install } => {
            for rule in service(&install).await?.rules().await? {
                println!("{}", berth_server::ecr::extension::rule_json(&rule));
            }
        }
        PromotionCommand::DeleteRule { install, name } => {
            service(&install).await?.delete_rule(&name).await?;
            println!("deleted rule {name}");
        }
        PromotionCommand::List {
            install,
            repository,
            limit,
        } => {
            for d in service(&install)
                .await?
                .decisions(repository.as_deref(), limit)
                .await?
            {
                println!(
                    "{:<9} {}@{} -> {} (rule {}): {}",
                    d.status, d.source_repository, d.digest, d.destination, d.rule, d.reason
                );
            }
        }
    }
    Ok(())
}
