//! Packing a build context directory into a reproducible tar.gz.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use tar::{EntryType, Header};

use crate::BundleError;

/// Writes the contents of `dir` to `out` as a gzip-compressed tar.
///
/// The output depends only on the names, contents, kinds and executable bits
/// of what is in `dir`, so packing the same contents twice gives the same
/// bytes and the output's sha256 is a content address:
///
/// - paths are relative to `dir` (which itself is not an entry), in a
///   depth-first walk with each directory's entries sorted by name;
/// - every entry has mtime 0, uid and gid 0 and no user or group names;
/// - directories get mode 0o755, files 0o755 if any executable bit is set
///   and 0o644 otherwise; setuid, setgid and sticky bits are dropped;
/// - symlinks are stored as symlinks, with their target as is (never
///   followed); other files are stored as regular files, hard links included;
/// - a device, fifo or socket makes it fail with [`BundleError::Unsafe`].
///
/// `.dockerignore` is not honoured. A file that shrinks while it is being
/// read makes it fail rather than write a corrupt archive. On error, `out`
/// holds a partial archive.
pub fn pack_dir(dir: &Path, out: &mut impl Write) -> Result<(), BundleError> {
    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::default()));

    // A stack of paths relative to `dir`; children are pushed in reverse
    // order so that they come off it sorted.
    let mut todo = sorted_children(dir, Path::new(""))?;
    while let Some(rel) = todo.pop() {
        let full = dir.join(&rel);
        let meta = fs::symlink_metadata(&full)?;
        let kind = meta.file_type();

        let mut header = Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);

        if kind.is_dir() {
            header.set_entry_type(EntryType::Directory);
            header.set_mode(0o755);
            tar.append_data(&mut header, &rel, io::empty())?;
            todo.extend(sorted_children(dir, &rel)?);
        } else if kind.is_symlink() {
            let target = fs::read_link(&full)?;
            header.set_entry_type(EntryType::Symlink);
            header.set_mode(0o777);
            tar.append_link(&mut header, &rel, &target)?;
        } else if kind.is_file() {
            let file = File::open(&full)?;
            // The size from the open file, so that it and the bytes read
            // describe the same file.
            let size = file.metadata()?.len();
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            header.set_entry_type(EntryType::Regular);
            header.set_mode(mode);
            header.set_size(size);
            let data = ExactReader {
                inner: file,
                left: size,
            };
            tar.append_data(&mut header, &rel, data)?;
        } else {
            return Err(BundleError::Unsafe {
                path: rel.to_string_lossy().into_owned(),
                why: "is a device, pipe or socket, which a bundle cannot hold",
            });
        }
    }

    let gzip = tar.into_inner()?;
    gzip.finish()?;
    Ok(())
}

/// The entries of `dir/rel`, as paths relative to `dir`, in reverse name
/// order (ready to be pushed on a stack).
fn sorted_children(dir: &Path, rel: &Path) -> io::Result<Vec<PathBuf>> {
    let mut names = fs::read_dir(dir.join(rel))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<io::Result<Vec<OsString>>>()?;
    names.sort_unstable_by(|a, b| b.cmp(a));
    Ok(names.into_iter().map(|name| rel.join(name)).collect())
}

/// Reads exactly `left` bytes from `inner`: stops there if the file grew,
/// and fails if it ends early, so the tar header's size stays true.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a file got shorter while it was being packed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
