//! The `berth` command: `berth serve` runs the registry, `berth bench` measures
//! one, `berth admin` manages users and robot accounts.

mod admin;
mod aws_json;
mod bench;
mod build;
mod health;
mod jobs;
mod privatize;
mod promotion;
mod serve;
mod tls;
mod vulndb;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A container registry with Amazon ECR's behaviour, anywhere."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (OCI Distribution API on /v2/).
    Serve(Box<serve::ServeArgs>),
    /// Measure a registry's push and pull speed against this machine's limits.
    Bench(bench::BenchArgs),
    /// Manage users and robot accounts directly in an install's database.
    Admin(admin::AdminArgs),
    /// Apply lifecycle policies now (`serve` applies them every `--lifecycle-interval`).
    Lifecycle(jobs::LifecycleArgs),
    /// Reclaim blobs nothing references now (`serve` does every `--gc-interval`).
    Gc(jobs::GcArgs),
    /// Print the newest recorded events (pushes, deletes, lifecycle expiries), EventBridge-shaped.
    Events(jobs::EventsArgs),
    /// Show the durable job queue (or queue a job).
    Jobs(jobs::QueueArgs),
    /// Load or update the advisory database image scans match against.
    Vulndb(vulndb::VulndbArgs),
    /// Scan-gated promotion rules, and what they decided.
    Promotion(promotion::PromotionArgs),
    /// Copy public images into a berth, under namespaces named after their registries.
    Privatize(privatize::PrivatizeArgs),
    /// Build images from source bundles on a berth (server-side).
    Build(build::BuildArgs),
    /// Make a local certificate authority and a certificate for berth's names (ECR-style ones too).
    Tls(tls::TlsArgs),
    /// Exit 0 when a berth on this machine answers `/healthz` (for a container's HEALTHCHECK).
    Healthcheck(health::HealthArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                // PostgreSQL's notices ("schema … already exists") are not news.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn")
                }),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, never into a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(*args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
        Command::Admin(args) => runtime.block_on(admin::run(args)),
        Command::Lifecycle(args) => runtime.block_on(jobs::lifecycle(args)),
        Command::Gc(args) => runtime.block_on(jobs::gc(args)),
        Command::Vulndb(args) => runtime.block_on(vulndb::run(args)),
        Command::Promotion(args) => runtime.block_on(promotion::run(args)),
        Command::Privatize(args) => runtime.block_on(privatize::run(args)),
        Command::Build(args) => runtime.block_on(build::run(args)),
        Command::Tls(args) => tls::run(args),
        Command::Healthcheck(args) => runtime.block_on(health::run(args)),
        Command::Events(args) => runtime.block_on(jobs::events(args)),
        Command::Jobs(args) => runtime.block_on(jobs::queue(args)),
    }
}
