//! `berth healthcheck`: asks a berth on this machine whether it answers, for
//! a container's `HEALTHCHECK` or a supervisor (the image has no curl).

use std::net::SocketAddr;
use std::time::Duration;

#[derive(clap::Args)]
pub struct HealthArgs {
    /// What to ask; default: `/healthz` on the address `serve` listens on
    /// (`BERTH_LISTEN`), over https when `BERTH_TLS_CERT` is set.
    #[arg(long)]
    url: Option<String>,

    /// How long to wait for the answer.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// `/healthz` on the listener `BERTH_LISTEN` names, reached over loopback.
fn default_url() -> String {
    let listen: SocketAddr = std::env::var("BERTH_LISTEN")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5000)));
    let host = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => format!("[::1]:{}", listen.port()),
        ip if ip.is_unspecified() => format!("127.0.0.1:{}", listen.port()),
        _ => listen.to_string(),
    };
    let scheme = if std::env::var_os("BERTH_TLS_CERT").is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/healthz")
}

pub async fn run(args: HealthArgs) -> anyhow::Result<()> {
    let url = args.url.unwrap_or_else(default_url);
    // Whether the process answers, not who it is: the certificate names the
    // public host, not the loopback address asked here.
    let client = reqwest::Client::builder()
        .timeout(args.timeout)
        .danger_accept_invalid_certs(true)
        .build()?;
    let response = client.get(&url).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    println!("{url}: ok");
    Ok(())
}
