//! berth's domain: the rules of names, digests and manifests, as pure code
//! with no I/O, so that every front door and backend shares one definition.

pub mod digest;
pub mod lifecycle;
pub mod manifest;
pub mod mutability;
pub mod name;
pub mod policy;
pub mod sigv4;

pub use digest::{Algorithm, Digest, Hasher};
pub use name::{Reference, RepositoryName, Tag};
