//! berth's services and front doors.

pub mod access;
pub mod builds;
pub mod console;
pub mod ecr;
pub mod events;
pub mod gc;
pub mod iam;
pub mod identity;
pub mod jobs;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod oci;
pub mod outbox;
pub mod projects;
pub mod promotion;
pub mod pullthrough;
pub mod query;
pub mod registry;
pub mod replication;
pub mod scanning;
pub mod secrets;
pub mod settings;
pub mod signing;
mod slow;
pub mod templates;
pub mod webhooks;
pub mod wrapper;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};

pub use access::Access;
pub use identity::Identity;
pub use registry::{Registry, RegistryConfig, RegistryError};

/// Everything the front doors share.
pub struct App {
    pub registry: Arc<Registry>,
    pub identity: Arc<Identity>,
    pub access: Arc<Access>,
    /// Users, groups, roles, their keys and policies.
    pub iam: Arc<iam::Iam>,
    pub lifecycle: Arc<lifecycle::Lifecycle>,
    pub scanning: Arc<scanning::Scanning>,
    pub promotion: Arc<promotion::Promotion>,
    pub pull_through: Arc<pullthrough::PullThrough>,
    pub secrets: Arc<secrets::Secrets>,
    /// Image builds from source bundles.
    pub builds: Arc<builds::Builds>,
    /// Repository creation templates.
    pub templates: Arc<templates::Templates>,
    /// Replication to other registries.
    pub replication: Arc<replication::Replication>,
    /// Managed signing: configuration, keys, signatures on push.
    pub signing: Arc<signing::Signing>,
    /// ECR's account settings.
    pub account_settings: Arc<settings::AccountSettings>,
    /// Events delivered to HTTP receivers.
    pub webhooks: Arc<webhooks::Webhooks>,
    /// Projects: namespaces with members and robots, on IAM.
    pub projects: Arc<projects::Projects>,
    /// Console passwords and sessions.
    pub passwords: Arc<console::passwords::Passwords>,
    /// Failed console sign-ins on this node, for rate limiting.
    pub console_throttle: console::Throttle,
    /// The durable job queue's workers on this node.
    pub jobs: Arc<jobs::Jobs>,
    /// `scheme://host[:port]` clients reach berth at, when not the request's `Host`.
    pub public_url: Option<String>,
    /// `<account>.dkr.ecr.<region>.<domain>` under `--ecr-domain`: the host
    /// clients are told to reach the registry at, with the port they used.
    pub ecr_host: Option<String>,
    /// `http` or `https`: how this listener is reached.
    pub scheme: &'static str,
}

impl App {
    /// The facts about a request that policy conditions test.
    pub fn request_facts(&self, request: &Request) -> access::RequestFacts {
        access::RequestFacts {
            source_ip: request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                // An IPv4 client of a dual-stack listener arrives as
                // `::ffff:a.b.c.d`; policies name it by its IPv4 address.
                .map(|info| info.0.ip().to_canonical()),
            secure: self.scheme == "https",
            request_tags: Vec::new(),
            tag_keys: Vec::new(),
        }
    }

    /// `scheme://host[:port]` clients reach this registry at: the configured
    /// public URL, the ECR-style host with the request's port, or the
    /// request's own `Host`.
    pub fn endpoint(&self, headers: &axum::http::HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        match &self.ecr_host {
            Some(ecr) => format!("{}://{ecr}{}", self.scheme, port_of(host)),
            None => format!("{}://{host}", self.scheme),
        }
    }
}

/// `:PORT` of a `Host` value that names one, else nothing.
fn port_of(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i + 1..].is_empty() && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[i..]
        }
        _ => "",
    }
}

/// `GET /healthz`: the process answers. No dependency is checked.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the database and the blob storage answer, so a load
/// balancer may send traffic here (503 otherwise). Also says which
/// background jobs this node runs.
async fn readyz(State(app): State<Arc<App>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (database, storage) = app.registry.readiness().await;
    let status = |r: &Result<(), berth_store::StoreError>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let ready = database.is_ok() && storage.is_ok();
    let body = serde_json::json!({
        "database": status(&database),
        "storage": status(&storage),
        "node": app.registry.node_id(),
        "jobs": app.jobs.running(),
        "builder": if app.builds.can_build() { "ok" } else { "absent: this node takes no build jobs" },
    });
    let code = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// `GET /berth/signing/<profile name>/ca.crt`: the certificate authority a
/// signing profile's signatures chain to, for verifiers' trust stores.
/// Public, as a certificate is.
async fn signing_authority(
    State(app): State<Arc<App>>,
    axum::extract::Path(profile): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match app.signing.authority(&profile).await {
        Ok(Some(pem)) => (
            [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
            pem,
        )
            .into_response(),
        Ok(None) => (
            axum::http::StatusCode::NOT_FOUND,
            "no such signing profile has signed here\n",
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "could not read a signing authority");
            axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Bounds on what clients may make berth hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests handled at once; more wait their turn.
    pub requests: usize,
    /// How long a request body may go without sending anything.
    pub body_idle: std::time::Duration,
    /// Bytes per second a request body must average over each `body_idle`
    /// window (0: no minimum).
    pub min_body_rate: u64,
}

/// `GET /metrics`: this node's counters, and the queue as the database holds it.
async fn metrics_text(State(app): State<Arc<App>>) -> String {
    let mut text = metrics::METRICS.render();
    match app.jobs.counts().await {
        Ok(counts) => text.push_str(&metrics::Metrics::render_queue(&counts)),
        Err(e) => tracing::warn!(error = %e, "could not count the queued jobs"),
    }
    text
}

/// The HTTP application: every front door on one listener.
pub fn app(app: Arc<App>, limits: Limits) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .merge(console::router())
        .route("/metrics", axum::routing::get(metrics_text))
        .route(
            "/berth/signing/{profile}/ca.crt",
            axum::routing::get(signing_authority),
        )
        .fallback(|State(app): State<Arc<App>>, request: Request| async move {
            // Classified once, by the wrapper.
            let door = request.extensions().get::<wrapper::Door>().copied();
            match door.unwrap_or_else(|| wrapper::Door::of(&request)) {
                wrapper::Door::Ecr => ecr::serve(app, request).await,
                wrapper::Door::Query => query::serve(app, request).await,
                wrapper::Door::Oci | wrapper::Door::Other => oci::serve(app, request).await,
            }
        })
        .layer(axum::middleware::from_fn(wrapper::wrap))
        .layer(axum::middleware::map_request(
            move |request: Request| async move {
                request
                    .map(|body| slow::MinRate::wrap(body, limits.body_idle, limits.min_body_rate))
            },
        ))
        .with_state(app)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_idle,
        ))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.requests.max(1),
        ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_port_of_a_host_header() {
        assert_eq!(super::port_of("registry.example:8443"), ":8443");
        assert_eq!(super::port_of("registry.example"), "");
        assert_eq!(super::port_of("[::1]:5000"), ":5000");
        assert_eq!(super::port_of("[::1]"), "");
        assert_eq!(super::port_of("host:"), "");
    }
}
