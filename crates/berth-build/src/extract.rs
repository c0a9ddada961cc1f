//! Unpacking an uploaded bundle, treating it as hostile.
//!
//! Every entry is checked before anything is written for it:
//!
//! - its name must be relative, without `..`, a Windows drive or `\`;
//! - its declared size is added to a running total held to
//!   [`Limits::max_bytes`], and the entry count to [`Limits::max_entries`];
//! - every directory above it must be a real directory (never a symlink) and
//!   the entry itself must not exist yet, so nothing is written through a
//!   symlink and nothing extracted is replaced;
//! - a symlink's target must be relative and, taken from the link's own
//!   directory, stay inside the destination; it may climb with `..` only at
//!   its start. So every symlink, however links chain, resolves inside the
//!   destination;
//! - a hard link must point at a regular file extracted before it;
//! - devices, fifos, sockets and sparse files are refused.
//!
//! File data is copied with a cap at the declared size, so an entry whose
//! data is longer than its header says (a lying zip) is refused as well.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::{BundleError, Format, sniff};

/// How much an extraction may unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes the entries may declare, all together.
    pub max_bytes: u64,
    /// The most entries (files, directories and links) the bundle may hold.
    pub max_entries: u64,
}

impl Default for Limits {
    /// 8 GiB and 100 000 entries.
    fn default() -> Self {
        Limits {
            max_bytes: 8 << 30,
            max_entries: 100_000,
        }
    }
}

/// What [`extract`] unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Regular files written, hard links included.
    pub files: u64,
    /// File bytes written.
    pub bytes: u64,
    /// The build context: the destination directory, or its only top-level
    /// directory when the Dockerfile is in there.
    pub context: PathBuf,
    /// The `Dockerfile` (or else `Containerfile`) directly in `context`.
    pub dockerfile: PathBuf,
}

/// The longest tar extension header (GNU long name or link, PAX) accepted.
const MAX_EXTENSION_HEADER: u64 = 1 << 20;
/// The longest symlink target accepted (Linux's `PATH_MAX`).
const MAX_LINK_TARGET: u64 = 4096;

/// Unpacks the bundle at `bundle` into `dest`, which must be an existing,
/// empty directory, and finds its Dockerfile.
///
/// The format is sniffed from the content (see [`sniff`]), not the file
/// name. Nothing is ever created or modified outside `dest`, whatever the
/// bundle holds: an entry that would is refused with
/// [`BundleError::Unsafe`] before anything is written for it (see the module
/// docs for the rules). Files get mode 0o755 if any executable bit was set,
/// 0o644 otherwise; directories get 0o755. Ownership and times are not
/// restored.
///
/// The context is `dest` if it directly holds a `Dockerfile` or
/// `Containerfile`; otherwise, if `dest` holds a single directory (not
/// counting a `__MACOSX` folder) with one of those in it, as a zip made of a
/// folder does, that directory. Otherwise it fails with
/// [`BundleError::NoDockerfile`].
///
/// On error, `dest` may hold part of the bundle; the caller should remove it.
pub fn extract(bundle: &Path, dest: &Path, limits: &Limits) -> Result<Extracted, BundleError> {
    if fs::read_dir(dest)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the destination directory is not empty",
        )
        .into());
    }

    let mut file = File::open(bundle)?;
    let mut head = Vec::with_capacity(512);
    (&mut file).take(512).read_to_end(&mut head)?;
    file.seek(SeekFrom::Start(0))?;

    let mut unpacker = Unpacker::new(dest, limits);
    match sniff(&head) {
        Some(Format::TarGz) => {
            unpack_tar(MultiGzDecoder::new(BufReader::new(file)), &mut unpacker)?
        }
        Some(Format::Tar) => unpack_tar(BufReader::new(file), &mut unpacker)?,
        Some(Format::Zip) => unpack_zip(BufReader::new(file), &mut unpacker)?,
        None => {
            return Err(BundleError::Unsupported(
                "it is not a zip, tar or tar.gz archive".to_string(),
            ));
        }
    }

    let (context, dockerfile) = find_dockerfile(dest)?;
    Ok(Extracted {
        files: unpacker.files,
        bytes: unpacker.bytes,
        context,
        dockerfile,
    })
}

/// Unpacks a tar stream.
///
/// The tar crate's own handling of GNU long names and PAX headers reads them
/// into memory whatever their size, so the stream is read raw and those
/// headers are handled here, with a cap on their size.
fn unpack_tar(reader: impl Read, out: &mut Unpacker) -> Result<(), BundleError> {
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(read_error)?.raw(true);

    // Extension headers seen since the last real entry; they describe the
    // next one.
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut pax: Option<Vec<u8>> = None;

    for entry in entries {
        let mut entry = entry.map_err(read_error)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let declared = entry.size();

        if kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions() {
            out.count_bytes(declared)?;
            let slot = if kind.is_gnu_longname() {
                &mut long_name
            } else if kind.is_gnu_longlink() {
                &mut long_link
            } else {
                &mut pax
            };
            if slot.is_some() {
                return Err(BundleError::Corrupt(
                    "two extended tar headers describe the same entry".to_string(),
                ));
            }
            *slot = Some(read_extension_header(&mut entry, declared)?);
            continue;
        }
        if kind.is_pax_global_extensions() {
            // Nothing in a global header matters here; the tar reader skips
            // its data.
            out.count_entry()?;
            out.count_bytes(declared)?;
            continue;
        }

        let pax = parse_pax(pax.take().as_deref())?;
        let raw_name = long_name
            .take()
            .map(until_nul)
            .or(pax.path)
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let raw_link = long_link
            .take()
            .map(until_nul)
            .or(pax.linkpath)
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));

        out.count_entry()?;
        out.count_bytes(declared.max(pax.size.unwrap_or(0)))?;
        let name = check_name(&raw_name)?;

        if pax.sparse || kind.is_gnu_sparse() {
            return Err(name.refuse("is a sparse file, which a bundle may not hold"));
        }
        if pax.size.is_some_and(|size| size != declared) {
            return Err(BundleError::Unsupported(format!(
                "the entry `{}` gives its size in a PAX header, which berth does not read",
                name.shown
            )));
        }

        let is_file = kind.is_file() || kind.is_contiguous();
        if kind.is_dir() || (is_file && raw_name.ends_with(b"/")) {
            out.dir(&name)?;
        } else if is_file {
            let mode = header.mode().map_err(read_error)?;
            out.file(&name, mode, declared, &mut entry)?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = raw_link else {
                return Err(BundleError::Corrupt(format!(
                    "the link `{}` has no target",
                    name.shown
                )));
            };
            if kind.is_symlink() {
                out.symlink(&name, &target)?;
            } else {
                out.hard_link(&name, &target)?;
            }
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            return Err(name.refuse("is a device or a pipe, which a bundle may not hold"));
        } else {
            return Err(name.refuse("is a kind of tar entry that a bundle may not hold"));
        }
    }
    Ok(())
}

/// Reads a tar extension header's data, refusing an oversized one.
fn read_extension_header(entry: &mut impl Read, declared: u64) -> Result<Vec<u8>, BundleError> {
    if declared > MAX_EXTENSION_HEADER {
        return Err(BundleError::Corrupt(
            "an extended tar header is larger than 1 MiB".to_string(),
        ));
    }
    let mut data = Vec::new();
    copy_declared(entry, &mut data, declared, "(extended header)")?;
    Ok(data)
}

/// The PAX records that matter here.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    /// Any `GNU.sparse.*` record: the entry is a sparse file.
    sparse: bool,
}

fn parse_pax(data: Option<&[u8]>) -> Result<Pax, BundleError> {
    let mut pax = Pax::default();
    for record in tar::PaxExtensions::new(data.unwrap_or_default()) {
        let record =
            record.map_err(|_| BundleError::Corrupt("a PAX header is malformed".to_string()))?;
        match record.key_bytes() {
            b"path" => pax.path = Some(record.value_bytes().to_vec()),
            b"linkpath" => pax.linkpath = Some(record.value_bytes().to_vec()),
            b"size" => {
                let size = record.value().ok().and_then(|v| v.parse().ok());
                let Some(size) = size else {
                    return Err(BundleError::Corrupt(
                        "a PAX header has an invalid size".to_string(),
                    ));
                };
                pax.size = Some(size);
            }
            key if key.starts_with(b"GNU.sparse.") => pax.sparse = true,
            _ => {}
        }
    }
    Ok(pax)
}

/// A GNU long name or link is NUL-terminated.
fn until_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(end) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(end);
    }
    bytes
}

/// Unpacks a zip file.
fn unpack_zip(reader: BufReader<File>, out: &mut Unpacker) -> Result<(), BundleError> {
    let mut archive = zip::ZipArchive::new(reader).map_err(zip_error)?;
    if archive.len() as u64 > out.limits.max_entries {
        return Err(BundleError::TooLarge {
            limit: out.limits.max_entries,
        });
    }

    for index in 0..archive.len() {
        let mut file = archive.by_index(index).map_err(zip_error)?;
        let raw_name = file.name().map_err(zip_error)?.into_owned();
        let declared = file.size();
        out.count_entry()?;
        out.count_bytes(declared)?;
        let name = check_name(raw_name.as_bytes())?;

        // The zip format has no file types of its own; Unix zips keep the
        // mode's type bits in the external attributes.
        let mode = file.unix_mode();
        let file_type = mode.map_or(0, |m| m & 0o170_000);
        if raw_name.ends_with('/') || file_type == 0o040_000 {
            out.dir(&name)?;
        } else if file_type == 0o120_000 {
            if declared > MAX_LINK_TARGET {
                return Err(name.refuse("is a symlink with an overly long target"));
            }
            let mut target = Vec::new();
            copy_declared(&mut file, &mut target, declared, &name.shown)?;
            out.symlink(&name, &target)?;
        } else if file_type == 0 || file_type == 0o100_000 {
            out.file(&name, mode.unwrap_or(0o644), declared, &mut file)?;
        } else {
            return Err(name.refuse("is a device, pipe or socket, which a bundle may not hold"));
        }
    }
    Ok(())
}

/// The state of one extraction: where to, the limits and what has been
/// counted and written so far.
struct Unpacker<'a> {
    dest: &'a Path,
    limits: &'a Limits,
    entries: u64,
    declared: u64,
    files: u64,
    bytes: u64,
    /// Regular files written so far, relative to `dest`: what hard links may
    /// point at.
    regular_files: HashSet<PathBuf>,
}

/// An entry's name, checked by [`check_name`].
struct EntryName {
    /// Relative to the destination, only normal components; empty for the
    /// destination itself.
    rel: PathBuf,
    /// The name as the archive gives it, fit for a message.
    shown: String,
}

impl EntryName {
    fn refuse(&self, why: &'static str) -> BundleError {
        BundleError::Unsafe {
            path: self.shown.clone(),
            why,
        }
    }
}

impl<'a> Unpacker<'a> {
    fn new(dest: &'a Path, limits: &'a Limits) -> Self {
        Unpacker {
            dest,
            limits,
            entries: 0,
            declared: 0,
            files: 0,
            bytes: 0,
            regular_files: HashSet::new(),
        }
    }

    /// Counts one more entry against `max_entries`.
    fn count_entry(&mut self) -> Result<(), BundleError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(BundleError::TooLarge {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// Counts an entry's declared size against `max_bytes`, before any of it
    /// is read.
    fn count_bytes(&mut self, declared: u64) -> Result<(), BundleError> {
        self.declared = self.declared.saturating_add(declared);
        if self.declared > self.limits.max_bytes {
            return Err(BundleError::TooLarge {
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    /// Creates a directory entry; one that already exists as a directory
    /// (made for an earlier entry inside it) is fine.
    fn dir(&self, name: &EntryName) -> Result<(), BundleError> {
        if name.rel.as_os_str().is_empty() {
            return Ok(());
        }
        let full = self.make_parents(name)?;
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(name.refuse("appears more than once in the bundle")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dir(&full)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a regular file, at most `declared` bytes of it.
    fn file(
        &mut self,
        name: &EntryName,
        mode: u32,
        declared: u64,
        data: &mut dyn Read,
    ) -> Result<(), BundleError> {
        let full = self.make_new(name)?;
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        // `create_new` also refuses to open through a symlink at `full`.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&full)?;
        let written = copy_declared(data, &mut file, declared, &name.shown)?;
        // Set again so the umask does not matter.
        file.set_permissions(Permissions::from_mode(mode))?;
        self.files += 1;
        self.bytes += written;
        self.regular_files.insert(name.rel.clone());
        Ok(())
    }

    /// Creates a symlink whose target stays inside the destination.
    fn symlink(&self, name: &EntryName, target: &[u8]) -> Result<(), BundleError> {
        check_symlink_target(&name.rel, target).map_err(|why| name.refuse(why))?;
        let full = self.make_new(name)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &full)?;
        Ok(())
    }

    /// Creates a hard link to a regular file extracted earlier.
    fn hard_link(&mut self, name: &EntryName, target: &[u8]) -> Result<(), BundleError> {
        let Ok(target) = checked_rel_path(target) else {
            return Err(name.refuse("is a hard link that points outside the bundle"));
        };
        if !self.regular_files.contains(&target) {
            return Err(
                name.refuse("is a hard link to a file that does not come before it in the bundle")
            );
        }
        let full = self.make_new(name)?;
        fs::hard_link(self.dest.join(&target), &full)?;
        self.files += 1;
        self.regular_files.insert(name.rel.clone());
        Ok(())
    }

    /// Like [`Self::make_parents`], and also checks that nothing is at the
    /// entry's own path yet.
    fn make_new(&self, name: &EntryName) -> Result<PathBuf, BundleError> {
        if name.rel.as_os_str().is_empty() {
            return Err(name.refuse("has an empty name"));
        }
        let full = self.make_parents(name)?;
        match fs::symlink_metadata(&full) {
            Ok(_) => Err(name.refuse("appears more than once in the bundle")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(full),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes sure every directory above the entry is a real directory inside
    /// the destination, creating the missing ones, and returns the entry's
    /// full path. Refuses an entry that would be written through a symlink.
    fn make_parents(&self, name: &EntryName) -> Result<PathBuf, BundleError> {
        let mut path = self.dest.to_path_buf();
        let Some(parent) = name.rel.parent() else {
            return Ok(path);
        };
        for part in parent.components() {
            path.push(part);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(name.refuse("would be written through a symlink"));
                }
                Ok(_) => return Err(name.refuse("is inside something that is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    create_dir(&path)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.dest.join(&name.rel))
    }
}

/// Creates one directory with mode 0o755, whatever the umask.
fn create_dir(path: &Path) -> io::Result<()> {
    fs::create_dir(path)?;
    fs::set_permissions(path, Permissions::from_mode(0o755))
}

/// Checks an entry's name and turns it into a path relative to the
/// destination.
fn check_name(raw: &[u8]) -> Result<EntryName, BundleError> {
    let shown = shown_name(raw);
    match checked_rel_path(raw) {
        Ok(rel) => Ok(EntryName { rel, shown }),
        Err(why) => Err(BundleError::Unsafe { path: shown, why }),
    }
}

/// Splits a name on `/` into normal components, refusing anything that
/// could lead outside the destination: an absolute path, a `..`, a Windows
/// drive letter or `\` separator, a NUL byte. `.` and empty components are
/// dropped, so `./a//b/` is `a/b`, and `./` is the empty path.
fn checked_rel_path(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.contains(&0) {
        return Err("has a NUL byte in its name");
    }
    if raw.starts_with(b"/") {
        return Err("is an absolute path");
    }
    if raw.contains(&b'\\') {
        return Err("has a `\\` in its name, as Windows paths do");
    }
    if matches!(raw, [letter, b':', ..] if letter.is_ascii_alphabetic()) {
        return Err("starts with a Windows drive letter");
    }
    let mut rel = PathBuf::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("escapes the bundle"),
            _ => rel.push(OsStr::from_bytes(part)),
        }
    }
    Ok(rel)
}

/// Checks a symlink's target, taken relative to the directory the link
/// `link` (a checked path) is in: it must be relative, and its leading
/// `..`s must not climb above the destination. A `..` after a normal
/// component is refused too, because the kernel applies it to wherever that
/// component resolves to, which may be another symlink.
fn check_symlink_target(link: &Path, target: &[u8]) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("is a symlink with an empty target");
    }
    if target.contains(&0) {
        return Err("is a symlink whose target has a NUL byte");
    }
    if target.starts_with(b"/") {
        return Err("is a symlink to an absolute path");
    }
    // How many directories the link's own directory is below the destination.
    let mut depth = link.components().count().saturating_sub(1);
    let mut descended = false;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if descended => {
                return Err("is a symlink whose target has `..` after a directory name");
            }
            b".." if depth == 0 => return Err("is a symlink that points outside the bundle"),
            b".." => depth -= 1,
            _ => descended = true,
        }
    }
    Ok(())
}

/// A name for messages: lossy UTF-8, control characters replaced, cut at
/// 200 characters.
fn shown_name(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut shown: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(200).is_some() {
        shown.push('…');
    }
    shown
}

/// Copies an entry's data, failing if there is more or less of it than
/// declared. Never writes more than `declared` bytes. Reading to the end
/// also makes the zip reader check the entry's CRC.
fn copy_declared(
    src: &mut dyn Read,
    dst: &mut dyn Write,
    declared: u64,
    shown: &str,
) -> Result<u64, BundleError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied: u64 = 0;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        copied = copied.saturating_add(n as u64);
        if copied > declared {
            return Err(BundleError::Corrupt(format!(
                "the entry `{shown}` holds more data than its header declares"
            )));
        }
        dst.write_all(&buf[..n])?;
    }
    if copied < declared {
        return Err(BundleError::Corrupt(format!(
            "the entry `{shown}` ends before its declared size"
        )));
    }
    Ok(copied)
}

/// Sorts an error from reading the archive: bad data is the bundle's fault,
/// anything else is an I/O problem.
fn read_error(e: io::Error) -> BundleError {
    match e.kind() {
        io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::Other => BundleError::Corrupt(e.to_string()),
        _ => BundleError::Io(e),
    }
}

fn zip_error(e: zip::result::ZipError) -> BundleError {
    use zip::result::ZipError;
    match e {
        ZipError::Io(e) => read_error(e),
        ZipError::UnsupportedArchive(what) => BundleError::Unsupported(format!(
            "the zip file uses a feature berth cannot read ({what})"
        )),
        ZipError::CompressionMethodNotSupported(_) => BundleError::Unsupported(format!(
            "the zip file uses a compression method berth cannot read ({e})"
        )),
        e => BundleError::Corrupt(e.to_string()),
    }
}

/// Finds the build context and its Dockerfile after unpacking; see
/// [`extract`].
fn find_dockerfile(dest: &Path) -> Result<(PathBuf, PathBuf), BundleError> {
    if let Some(dockerfile) = dockerfile_in(dest) {
        return Ok((dest.to_path_buf(), dockerfile));
    }
    let mut top_level = Vec::new();
    for entry in fs::read_dir(dest)? {
        let entry = entry?;
        if entry.file_name() != "__MACOSX" {
            top_level.push(entry);
        }
    }
    if let [only] = top_level.as_slice()
        && only.file_type()?.is_dir()
        && let Some(dockerfile) = dockerfile_in(&only.path())
    {
        return Ok((only.path(), dockerfile));
    }
    Err(BundleError::NoDockerfile)
}

/// `dir/Dockerfile`, or else `dir/Containerfile`, if it is a file. Symlinks
/// are followed: after [`extract`]'s checks they stay inside the bundle.
fn dockerfile_in(dir: &Path) -> Option<PathBuf> {
    ["Dockerfile", "Containerfile"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| fs::metadata(path).is_ok_and(|meta| meta.is_file()))
}
