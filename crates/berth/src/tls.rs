//! `berth tls`: a local certificate authority, a certificate for berth's
//! names signed by it, and what each client needs to trust them.
//!
//! The authority is made once and kept (`ca.crt`, `ca.key`): running the
//! command again reissues berth's certificate, for more names or before it
//! expires, and clients that already trust the authority go on trusting.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

#[derive(clap::Args)]
pub struct TlsArgs {
    /// Where `ca.crt`, `ca.key`, `berth.crt` and `berth.key` are written;
    /// an authority already there is reused.
    #[arg(long, default_value = "tls")]
    dir: PathBuf,

    /// Also certify the ECR-style names under DOMAIN that `serve
    /// --ecr-domain` answers as: `<account>.dkr.ecr.<region>.DOMAIN` and
    /// `api.ecr.<region>.DOMAIN`.
    #[arg(long, env = "BERTH_ECR_DOMAIN")]
    ecr_domain: Option<String>,

    /// The 12-digit account id in the ECR-style registry name.
    #[arg(long, env = "BERTH_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,

    /// The region in the ECR-style names.
    #[arg(long, env = "BERTH_REGION", default_value = "us-east-1")]
    region: String,

    /// More DNS names or IP addresses to certify (repeatable); `localhost`
    /// and `127.0.0.1` are always in.
    #[arg(long = "name")]
    names: Vec<String>,

    /// The address the ECR-style names should resolve to, for the
    /// `/etc/hosts` lines printed.
    #[arg(long, default_value = "127.0.0.1")]
    address: IpAddr,

    /// The port berth listens on with TLS, for the client settings printed
    /// (443 makes the names exactly ECR's).
    #[arg(long, default_value_t = 443)]
    port: u16,

    /// Days berth's certificate is valid (the authority: ten years).
    #[arg(long, default_value_t = 397)]
    days: u32,
}

/// The names an ECR-style berth answers as: its registry host, then its API host.
pub fn ecr_names(account: &str, region: &str, domain: &str) -> [String; 2] {
    [
        format!("{account}.dkr.ecr.{region}.{domain}"),
        format!("api.ecr.{region}.{domain}"),
    ]
}

/// The authority's subject; the same every time, so a kept key signs as the kept certificate.
fn authority_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "berth");
    name.push(DnType::CommonName, "berth local certificate authority");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Writes `contents` to `path`, readable by its owner only when `secret`.
fn write(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

pub fn run(args: TlsArgs) -> anyhow::Result<()> {
    ensure!(
        args.account_id.len() == 12 && args.account_id.bytes().all(|b| b.is_ascii_digit()),
        "the account id must be 12 digits, not '{}'",
        args.account_id
    );
    ensure!(args.days > 0, "--days must be at least 1");
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let (ca_cert, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let now = time::OffsetDateTime::now_utc();

    let authority_key = if ca_key.exists() && ca_cert.exists() {
        let pem = std::fs::read_to_string(&ca_key)?;
        KeyPair::from_pem(&pem).with_context(|| format!("reading {}", ca_key.display()))?
    } else {
        let key = KeyPair::generate()?;
        let mut params = authority_params();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key)?;
        write(&ca_key, &key.serialize_pem(), true)?;
        write(&ca_cert, &cert.pem(), false)?;
        key
    };
    let authority = Issuer::new(authority_params(), authority_key);

    let ecr = args
        .ecr_domain
        .as_deref()
        .map(|domain| ecr_names(&args.account_id, &args.region, domain));
    let mut names: Vec<String> = ecr.iter().flatten().cloned().collect();
    for name in args
        .names
        .iter()
        .map(String::as_str)
        .chain(["localhost", "127.0.0.1"])
    {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    let mut params = CertificateParams::new(names.clone())
        .context("a name is neither a DNS name nor an IP address")?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, names[0].clone());
    params.distinguished_name = subject;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(args.days));
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &authority)?;
    let (server_cert, server_key) = (dir.join("berth.crt"), dir.join("berth.key"));
    // The key first: a server that reloads on a change of either file sees
    // a pair that matches once the certificate lands.
    write(&server_key, &key.serialize_pem(), true)?;
    write(&server_cert, &cert.pem(), false)?;

    print!("{}", instructions(&args, &dir, ecr.as_ref(), &names));
    Ok(())
}

/// What to run and where to put the authority, for each kind of client.
fn instructions(args: &TlsArgs, dir: &Path, ecr: Option<&[String; 2]>, names: &[String]) -> String {
    let port = if args.port == 443 {
        String::new()
    } else {
        format!(":{}", args.port)
    };
    let registry = ecr.map_or_else(|| "localhost".to_string(), |n| n[0].clone());
    let ca = dir.join("ca.crt");
    let ca = ca.display();
    let mut out = String::new();
    let _ = writeln!(out, "authority: {ca} (clients trust this file)");
    let _ = writeln!(
        out,
        "berth's certificate: {0}/berth.crt, key {0}/berth.key, for {1}",
        dir.display(),
        names.join(", ")
    );
    let domain = args
        .ecr_domain
        .as_deref()
        .map(|d| {
            format!(
                " --ecr-domain {d} --account-id {} --region {}",
                args.account_id, args.region
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\nserve (reloads the files on SIGHUP and when they change):\n  berth serve --listen 0.0.0.0:{} --tls-cert {1}/berth.crt --tls-key {1}/berth.key{domain}",
        args.port,
        dir.display()
    );
    if let Some([registry, api]) = ecr {
        let _ = writeln!(
            out,
            "\n/etc/hosts, unless DNS names berth so:\n  {} {registry} {api}",
            args.address
        );
    }
    let _ = writeln!(
        out,
        "\ndocker (daemon):\n  mkdir -p /etc/docker/certs.d/{registry}{port}\n  cp {ca} /etc/docker/certs.d/{registry}{port}/ca.crt"
    );
    let _ = writeln!(
        out,
        "\npodman, buildah, skopeo:\n  mkdir -p /etc/containers/certs.d/{registry}{port}\n  cp {ca} /etc/containers/certs.d/{registry}{port}/ca.crt"
    );
    let _ = writeln!(
        out,
        "\ncontainerd (config_path = \"/etc/containerd/certs.d\"), /etc/containerd/certs.d/{registry}{port}/hosts.toml:\n  server = \"https://{registry}{port}\"\n  [host.\"https://{registry}{port}\"]\n    ca = \"{ca}\""
    );
    let _ = writeln!(
        out,
        "\naws CLI, AWS SDKs and the ECR credential helper (docker-credential-ecr-login):\n  export AWS_CA_BUNDLE={ca}"
    );
    let _ = writeln!(
        out,
        "\nthe whole machine (the kubelet and its ECR credential provider read it):\n  cp {ca} /usr/local/share/ca-certificates/berth.crt && update-ca-certificates"
    );
    out
}
