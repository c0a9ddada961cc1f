//! `berth vulndb`: the advisory database scans match against. `import`
//! loads an OSV export from disk (air-gapped installs); `update` downloads
//! OSV's per-ecosystem exports first (hosts with internet access).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::serve::InstallArgs;

/// OSV's public exports: `<SOURCE>/<ecosystem>/all.zip`.
const OSV_EXPORTS: &str = "https://osv-vulnerabilities.storage.googleapis.com";
/// The ecosystems berth's scanner reads packages of.
const ECOSYSTEMS: &[&str] = &[
    "Debian",
    "Ubuntu",
    "Alpine",
    "Rocky Linux",
    "AlmaLinux",
    "PyPI",
    "npm",
    "Go",
    "crates.io",
    "Maven",
    "RubyGems",
];

#[derive(Args, Debug)]
pub struct VulndbArgs {
    #[command(subcommand)]
    command: VulndbCommand,
}

#[derive(Subcommand, Debug)]
enum VulndbCommand {
    /// Load OSV records from a directory of `.json` files, an OSV `all.zip`, or one record.
    Import {
        #[command(flatten)]
        install: InstallArgs,
        /// The export to load.
        path: PathBuf,
    },
    /// Download OSV's exports of the ecosystems berth scans, then load them.
    Update {
        #[command(flatten)]
        install: InstallArgs,
        /// Where the exports are served (`<SOURCE>/<ecosystem>/all.zip`).
        #[arg(long, default_value = OSV_EXPORTS)]
        source: String,
        /// Only these ecosystems (repeatable); all berth scans by default.
        #[arg(long = "ecosystem")]
        ecosystems: Vec<String>,
    },
}

pub async fn run(args: VulndbArgs) -> anyhow::Result<()> {
    match args.command {
        VulndbCommand::Import { install, path } => {
            let install = install.open().await?;
            let report =
                berth_server::scanning::advisories::import(install.metadata.as_ref(), &path)
                    .await
                    .with_context(|| format!("importing {}", path.display()))?;
            print_report(&report);
        }
        VulndbCommand::Update {
            install,
            source,
            ecosystems,
        } => {
            let install = install.open().await?;
            let wanted: Vec<String> = if ecosystems.is_empty() {
                ECOSYSTEMS.iter().map(|e| e.to_string()).collect()
            } else {
                ecosystems
            };
            let client = reqwest::Client::new();
            for ecosystem in wanted {
                let url = format!(
                    "{}/{}/all.zip",
                    source.trim_end_matches('/'),
                    ecosystem.replace(' ', "%20")
                );
                eprintln!("downloading {url}");
                let mut response = client
                    .get(&url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .with_context(|| format!("downloading {url}"))?;
                let mut file = tempfile::Builder::new().suffix(".zip").tempfile()?;
                while let Some(chunk) = response.chunk().await? {
                    file.write_all(&chunk)?;
                }
                file.flush()?;
                let report = berth_server::scanning::advisories::import(
                    install.metadata.as_ref(),
                    file.path(),
                )
                .await
                .with_context(|| format!("importing {ecosystem}"))?;
                eprint!("{ecosystem}: ");
                print_report(&report);
            }
        }
    }
    Ok(())
}

fn print_report(report: &berth_server::scanning::advisories::ImportReport) {
    println!(
        "{} advisories stored, {} files skipped",
        report.stored,
        report.skipped.len()
    );
    for (name, why) in report.skipped.iter().take(20) {
        eprintln!("  skipped {name}: {why}");
    }
}
