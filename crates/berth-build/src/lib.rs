//! Source bundles for server-side image builds.
//!
//! A *bundle* is a build context in one file: a directory holding a
//! `Dockerfile` (or `Containerfile`) and whatever it copies in. The client
//! side makes one with [`pack_dir`]; the server side takes an uploaded one —
//! a tar.gz, a plain tar or a zip — and unpacks it with [`extract`], which
//! treats the upload as hostile: nothing is ever written outside the
//! destination directory, and the sizes declared in the archive are held to
//! [`Limits`] before anything is written.
//!
//! Everything here is synchronous and uses plain `std::fs`; async callers run
//! it in `spawn_blocking`. Unix only (it creates symlinks and sets modes).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

mod dockerfile;
mod extract;
mod pack;

pub use dockerfile::base_images;
pub use extract::{Extracted, Limits, extract};
pub use pack::pack_dir;

/// Why packing or unpacking a bundle failed.
///
/// The `Display` texts are complete English sentences meant for the person
/// who uploaded the bundle: they end up verbatim in a build's failure reason.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Neither the bundle's root nor its single top-level folder holds a
    /// `Dockerfile` or `Containerfile`.
    #[error(
        "the bundle has no Dockerfile or Containerfile at its root \
         (or inside its only top-level folder)"
    )]
    NoDockerfile,

    /// An entry that could write outside the destination, or that is of a
    /// kind a bundle may not hold. `path` is the entry's name as the archive
    /// gives it; `why` completes the sentence.
    #[error("the bundle's entry `{path}` {why}")]
    Unsafe { path: String, why: &'static str },

    /// The declared sizes add up to more than `Limits::max_bytes`, or there
    /// are more entries than `Limits::max_entries`; `limit` is the limit that
    /// was crossed.
    #[error(
        "the bundle is too large: it goes over the limit of {limit} \
         (bytes once unpacked, or number of entries)"
    )]
    TooLarge { limit: u64 },

    /// The bundle is not a zip, tar or tar.gz, or uses a feature of one of
    /// those formats that is not supported.
    #[error("the bundle's format is not supported: {0}")]
    Unsupported(String),

    /// Reading the bundle or writing the unpacked files failed.
    #[error("could not read or write the bundle: {0}")]
    Io(#[from] io::Error),

    /// The bundle is of a known format but its contents do not make sense.
    #[error("the bundle is corrupt: {0}")]
    Corrupt(String),
}

/// The archive formats [`extract`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A gzip-compressed tar (`.tar.gz`, `.tgz`).
    TarGz,
    /// An uncompressed POSIX or GNU tar.
    Tar,
    /// A zip file.
    Zip,
}

/// Tells the format of an archive from its first bytes (512 are enough).
///
/// Looks only at magic numbers: gzip's `1f 8b` (taken to be a tar.gz), zip's
/// `PK\x03\x04` (or `PK\x05\x06` for an empty zip), and the `ustar` magic at
/// offset 257 of a tar header. Old v7 tars, which have no magic, are not
/// recognised. Returns `None` for anything else, including input too short
/// to tell.
pub fn sniff(first_bytes: &[u8]) -> Option<Format> {
    if first_bytes.starts_with(&[0x1f, 0x8b]) {
        Some(Format::TarGz)
    } else if first_bytes.starts_with(b"PK\x03\x04") || first_bytes.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if first_bytes.get(257..262) == Some(b"ustar") {
        Some(Format::Tar)
    } else {
        None
    }
}

/// The SHA-256 digest of a file's contents, as `sha256:<64 lowercase hex>`.
///
/// Reads the file in chunks, so it works on files of any size.
pub fn digest_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_numbers() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Some(Format::TarGz));
        assert_eq!(sniff(b"PK\x03\x04rest"), Some(Format::Zip));
        assert_eq!(sniff(b"PK\x05\x06"), Some(Format::Zip));
        let mut tar = vec![0u8; 512];
        tar[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(sniff(&tar), Some(Format::Tar));
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"PK"), None);
        assert_eq!(sniff(&[0u8; 300]), None);
    }

    #[test]
    fn digests_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            digest_file(&path).unwrap(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
