//! berth's services and front doors.

pub mod oci;
pub mod registry;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};

pub use registry::{Registry, RegistryConfig, RegistryError};

/// The HTTP application: every front door on one router.
pub fn app(registry: Arc<Registry>) -> Router {
    Router::new()
        .fallback(|State(registry): State<Arc<Registry>>, request: Request| {
            oci::serve(registry, request)
        })
        .with_state(registry)
}
