//! Packing and unpacking bundles, with hostile bundles built byte by byte.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_build::{BundleError, Extracted, Limits, digest_file, extract, pack_dir};
use tar::{EntryType, Header};
use tempfile::TempDir;
use zip::write::SimpleFileOptions;

// ---------------------------------------------------------------------------
// Helpers

/// A temp dir holding `outer/dest`, so that anything written above `dest`
/// (even two levels up) lands where the test can see it.
struct Scratch {
    root: TempDir,
    dest: PathBuf,
    /// Kept apart from `root`, so it does not count as "outside dest".
    bundles: TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("outer").join("dest");
        fs::create_dir_all(&dest).unwrap();
        Scratch {
            root,
            dest,
            bundles: tempfile::tempdir().unwrap(),
        }
    }

    fn extract(&self, bundle: &[u8]) -> Result<Extracted, BundleError> {
        self.extract_with(bundle, &Limits::default())
    }

    fn extract_with(&self, bundle: &[u8], limits: &Limits) -> Result<Extracted, BundleError> {
        let path = self.bundles.path().join("bundle");
        fs::write(&path, bundle).unwrap();
        extract(&path, &self.dest, limits)
    }

    /// Asserts nothing but `outer/dest` was created in the temp dir.
    fn assert_nothing_outside(&self) {
        assert_eq!(
            tree(self.root.path(), Some(&self.dest)),
            vec!["outer/", "outer/dest/"]
        );
    }

    fn dest_is_empty(&self) -> bool {
        fs::read_dir(&self.dest).unwrap().next().is_none()
    }
}

/// Every path under `dir`, sorted, directories ending in `/`, symlinks as
/// `name -> target`, without descending into `skip`.
fn tree(dir: &Path, skip: Option<&Path>) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, skip: Option<&Path>, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.push(format!("{rel} -> {}", target.display()));
            } else if meta.is_dir() {
                out.push(format!("{rel}/"));
                if Some(path.as_path()) != skip {
                    walk(root, &path, skip, out);
                }
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, skip, &mut out);
    out.sort();
    out
}

/// Appends a tar entry with exactly the given name and link name bytes (the
/// tar crate's own setters refuse hostile names).
fn raw_entry(tar: &mut Vec<u8>, kind: EntryType, name: &[u8], link: &[u8], mode: u32, data: &[u8]) {
    let mut header = Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(data.len() as u64);
    header.set_mtime(0);
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().next_multiple_of(512), 0);
}

fn file(tar: &mut Vec<u8>, name: &str, data: &[u8]) {
    raw_entry(tar, EntryType::Regular, name.as_bytes(), b"", 0o644, data);
}

fn symlink(tar: &mut Vec<u8>, name: &str, target: &str) {
    raw_entry(
        tar,
        EntryType::Symlink,
        name.as_bytes(),
        target.as_bytes(),
        0o777,
        b"",
    );
}

fn end(mut tar: Vec<u8>) -> Vec<u8> {
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// A plain tar with a Dockerfile first, then what `more` adds.
fn tar_with(more: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut tar = Vec::new();
    file(&mut tar, "Dockerfile", b"FROM scratch\n");
    more(&mut tar);
    end(tar)
}

enum Z<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

fn zip_of(entries: &[Z]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default();
    for entry in entries {
        match entry {
            Z::File(name, data) => {
                zip.start_file(*name, options).unwrap();
                zip.write_all(data).unwrap();
            }
            Z::Dir(name) => zip.add_directory(*name, options).unwrap(),
            Z::Symlink(name, target) => zip.add_symlink(*name, *target, options).unwrap(),
        }
    }
    zip.finish().unwrap().into_inner()
}

fn pack(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    pack_dir(dir, &mut out).unwrap();
    out
}

fn assert_unsafe(result: Result<Extracted, BundleError>, want_path: &str, want_why: &str) {
    match result {
        Err(BundleError::Unsafe { path, why }) => {
            assert_eq!(path, want_path);
            assert!(why.contains(want_why), "why: {why}");
        }
        other => panic!("expected Unsafe for {want_path}, got {other:?}"),
    }
}

/// A small context with a bit of everything.
fn sample_context() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    fs::create_dir_all(root.join("app/empty")).unwrap();
    fs::write(root.join("app/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("app/run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(root.join("app/secret.txt"), "private").unwrap();
    fs::set_permissions(
        root.join("app/secret.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let long_dir = format!("{}/{}", "d".repeat(80), "e".repeat(80));
    fs::create_dir_all(root.join(&long_dir)).unwrap();
    fs::write(root.join(&long_dir).join("deep.txt"), vec![7u8; 100_000]).unwrap();
    std::os::unix::fs::symlink("app/run.sh", root.join("run")).unwrap();
    std::os::unix::fs::symlink(format!("../{long_dir}/deep.txt"), root.join("app/deep")).unwrap();
    dir
}

// ---------------------------------------------------------------------------
// pack_dir

#[test]
fn pack_is_reproducible() {
    let context = sample_context();
    let first = pack(context.path());
    let second = pack(context.path());
    assert_eq!(first, second);
    assert_eq!(first[..2], [0x1f, 0x8b]);

    // The same contents elsewhere, made in another order, pack the same.
    let copy = tempfile::tempdir().unwrap();
    let scratch = Scratch::new();
    scratch.extract(&first).unwrap();
    fs::rename(&scratch.dest, copy.path().join("ctx")).unwrap();
    assert_eq!(pack(&copy.path().join("ctx")), first);

    // A changed file changes the digest.
    let bundles = tempfile::tempdir().unwrap();
    fs::write(bundles.path().join("a"), &first).unwrap();
    fs::write(context.path().join("app/secret.txt"), "changed").unwrap();
    fs::write(bundles.path().join("b"), pack(context.path())).unwrap();
    let a = digest_file(&bundles.path().join("a")).unwrap();
    let b = digest_file(&bundles.path().join("b")).unwrap();
    assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
    assert_ne!(a, b);
}

#[test]
fn pack_refuses_special_files() {
    let context = tempfile::tempdir().unwrap();
    fs::write(context.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(context.path().join("sock")).unwrap();
    let mut out = Vec::new();
    match pack_dir(context.path(), &mut out) {
        Err(BundleError::Unsafe { path, .. }) => assert_eq!(path, "sock"),
        other => panic!("expected Unsafe, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// extract: ordinary bundles

#[test]
fn extract_round_trips_pack() {
    let context = sample_context();
    let scratch = Scratch::new();
    let got = scratch.extract(&pack(context.path())).unwrap();

    assert_eq!(got.context, scratch.dest);
    assert_eq!(got.dockerfile, scratch.dest.join("Dockerfile"));
    assert_eq!(got.files, 4);
    assert_eq!(got.bytes, 22 + 18 + 7 + 100_000);
    assert_eq!(tree(&scratch.dest, None), tree(context.path(), None));
    for rel in ["Dockerfile", "app/run.sh", "app/secret.txt"] {
        assert_eq!(
            fs::read(scratch.dest.join(rel)).unwrap(),
            fs::read(context.path().join(rel)).unwrap()
        );
    }
    let mode = |rel: &str| {
        fs::metadata(scratch.dest.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("app/run.sh"), 0o755);
    assert_eq!(mode("app/secret.txt"), 0o644);
    assert_eq!(mode("app"), 0o755);
    assert_eq!(
        fs::read(scratch.dest.join("app/deep")).unwrap().len(),
        100_000
    );
    scratch.assert_nothing_outside();
}

#[test]
fn extract_reads_plain_tar_and_zip() {
    let scratch = Scratch::new();
    let got = scratch
        .extract(&tar_with(|t| file(t, "./src/main.c", b"int main;")))
        .unwrap();
    assert_eq!((got.files, got.bytes), (2, 13 + 9));

    let scratch = Scratch::new();
    let zip = zip_of(&[
        Z::File("Containerfile", b"FROM scratch\n"),
        Z::Dir("src/"),
        Z::File("src/a.txt", b"a"),
        Z::Symlink("b.txt", "src/a.txt"),
    ]);
    let got = scratch.extract(&zip).unwrap();
    assert_eq!(got.dockerfile, scratch.dest.join("Containerfile"));
    assert_eq!(fs::read(scratch.dest.join("b.txt")).unwrap(), b"a");
    assert_eq!(
        tree(&scratch.dest, None),
        vec!["Containerfile", "b.txt -> src/a.txt", "src/", "src/a.txt"]
    );
}

#[test]
fn zip_of_a_folder_uses_the_folder_as_context() {
    let scratch = Scratch::new();
    let zip = zip_of(&[
        Z::Dir("image-bar/"),
        Z::File("image-bar/Dockerfile", b"FROM scratch\n"),
        Z::File("image-bar/app/main.sh", b"echo"),
        Z::File("__MACOSX/image-bar/._Dockerfile", b"junk"),
    ]);
    let got = scratch.extract(&zip).unwrap();
    assert_eq!(got.context, scratch.dest.join("image-bar"));
    assert_eq!(got.dockerfile, scratch.dest.join("image-bar/Dockerfile"));
}

#[test]
fn a_dockerfile_two_levels_down_is_not_found() {
    let scratch = Scratch::new();
    let zip = zip_of(&[Z::File("a/b/Dockerfile", b"FROM scratch\n")]);
    assert!(matches!(
        scratch.extract(&zip),
        Err(BundleError::NoDockerfile)
    ));
}

#[test]
fn no_dockerfile() {
    let scratch = Scratch::new();
    let mut tar = Vec::new();
    file(&mut tar, "README", b"hello");
    let err = scratch.extract(&end(tar)).unwrap_err();
    assert!(matches!(err, BundleError::NoDockerfile), "{err:?}");
    assert!(err.to_string().contains("no Dockerfile"), "{err}");
}

#[test]
fn modes_keep_only_the_executable_bit() {
    let scratch = Scratch::new();
    let bundle = tar_with(|t| {
        raw_entry(t, EntryType::Regular, b"suid", b"", 0o4755, b"x");
        raw_entry(t, EntryType::Regular, b"locked", b"", 0o000, b"x");
    });
    scratch.extract(&bundle).unwrap();
    let mode = |rel: &str| {
        fs::metadata(scratch.dest.join(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("locked"), 0o644);
}

#[test]
fn hard_links_to_earlier_files_work() {
    let scratch = Scratch::new();
    let bundle = tar_with(|t| {
        file(t, "a.txt", b"abc");
        raw_entry(t, EntryType::Link, b"b.txt", b"./a.txt", 0o644, b"");
    });
    let got = scratch.extract(&bundle).unwrap();
    assert_eq!(got.files, 3);
    assert_eq!(fs::read(scratch.dest.join("b.txt")).unwrap(), b"abc");
}

#[test]
fn pax_path_is_honoured() {
    let scratch = Scratch::new();
    let record = "path=from-pax.txt\n";
    // The length prefix counts itself.
    let record = format!("{} {record}", record.len() + 3);
    let bundle = tar_with(|t| {
        raw_entry(
            t,
            EntryType::XHeader,
            b"PaxHeader",
            b"",
            0o644,
            record.as_bytes(),
        );
        file(t, "short", b"x");
    });
    scratch.extract(&bundle).unwrap();
    assert!(scratch.dest.join("from-pax.txt").is_file());
    assert!(!scratch.dest.join("short").exists());
}

#[test]
fn dest_must_be_empty() {
    let scratch = Scratch::new();
    fs::write(scratch.dest.join("x"), "").unwrap();
    assert!(matches!(
        scratch.extract(&tar_with(|_| {})),
        Err(BundleError::Io(_))
    ));
}

// ---------------------------------------------------------------------------
// extract: hostile bundles

#[test]
fn refuses_parent_dir_entry() {
    let scratch = Scratch::new();
    let err = scratch
        .extract(&tar_with(|t| file(t, "../evil", b"x")))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the bundle's entry `../evil` escapes the bundle"
    );
    assert_unsafe(Err(err), "../evil", "escapes");
    scratch.assert_nothing_outside();

    let scratch = Scratch::new();
    let result = scratch.extract(&tar_with(|t| file(t, "a/../../evil", b"x")));
    assert_unsafe(result, "a/../../evil", "escapes");
    scratch.assert_nothing_outside();
}

#[test]
fn refuses_absolute_entry() {
    let scratch = Scratch::new();
    let evil = format!("/tmp/berth-build-test-evil-{}", std::process::id());
    let result = scratch.extract(&tar_with(|t| file(t, &evil, b"x")));
    assert_unsafe(result, &evil, "absolute");
    assert!(!Path::new(&evil).exists());
    scratch.assert_nothing_outside();
}

#[test]
fn refuses_windows_paths() {
    let scratch = Scratch::new();
    assert_unsafe(
        scratch.extract(&tar_with(|t| file(t, "..\\evil", b"x"))),
        "..\\evil",
        "Windows",
    );
    let scratch = Scratch::new();
    assert_unsafe(
        scratch.extract(&tar_with(|t| file(t, "C:evil", b"x"))),
        "C:evil",
        "drive letter",
    );
}

#[test]
fn refuses_absolute_symlink_and_writing_through_it() {
    let scratch = Scratch::new();
    let result = scratch.extract(&tar_with(|t| {
        symlink(t, "link", "/etc");
        file(t, "link/passwd", b"root::0:0::/:/bin/sh\n");
    }));
    assert_unsafe(result, "link", "absolute");
    scratch.assert_nothing_outside();
}

#[test]
fn refuses_writing_through_an_inside_symlink() {
    let scratch = Scratch::new();
    let result = scratch.extract(&tar_with(|t| {
        raw_entry(t, EntryType::Directory, b"sub/", b"", 0o755, b"");
        symlink(t, "link", "sub");
        file(t, "link/passwd", b"x");
    }));
    assert_unsafe(result, "link/passwd", "through a symlink");
    assert!(!scratch.dest.join("sub/passwd").exists());
    scratch.assert_nothing_outside();
}

#[test]
fn refuses_escaping_symlinks() {
    let scratch = Scratch::new();
    assert_unsafe(
        scratch.extract(&tar_with(|t| symlink(t, "up", "../.."))),
        "up",
        "outside",
    );
    scratch.assert_nothing_outside();

    // Inside, lexically: a/b/c/link points at the root...
    let scratch = Scratch::new();
    scratch
        .extract(&tar_with(|t| symlink(t, "a/b/c/link", "../../..")))
        .unwrap();
    // ...but the kernel would take `..` after it to the root's parent.
    let scratch = Scratch::new();
    let result = scratch.extract(&tar_with(|t| {
        symlink(t, "a/b/c/link", "../../..");
        symlink(t, "escape", "a/b/c/link/..");
    }));
    assert_unsafe(result, "escape", "`..` after a directory name");
    scratch.assert_nothing_outside();
}

#[test]
fn refuses_bad_hard_links() {
    let scratch = Scratch::new();
    let result = scratch.extract(&tar_with(|t| {
        raw_entry(
            t,
            EntryType::Link,
            b"passwd",
            b"../../../etc/passwd",
            0o644,
            b"",
        );
    }));
    assert_unsafe(result, "passwd", "outside");

    let scratch = Scratch::new();
    let result = scratch.extract(&tar_with(|t| {
        raw_entry(t, EntryType::Link, b"early", b"later", 0o644, b"");
        file(t, "later", b"x");
    }));
    assert_unsafe(result, "early", "does not come before it");
    scratch.assert_nothing_outside();
}

#[test]
fn refuses_zip_slip() {
    let scratch = Scratch::new();
    let zip = zip_of(&[
        Z::File("Dockerfile", b"FROM scratch\n"),
        Z::File("../../evil.txt", b"x"),
    ]);
    let err = scratch.extract(&zip).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the bundle's entry `../../evil.txt` escapes the bundle"
    );
    scratch.assert_nothing_outside();
}

#[test]
fn refuses_escaping_zip_symlink() {
    let scratch = Scratch::new();
    let zip = zip_of(&[Z::Symlink("etc", "/etc"), Z::File("etc/passwd", b"x")]);
    assert_unsafe(scratch.extract(&zip), "etc", "absolute");
    scratch.assert_nothing_outside();
}

#[test]
fn refuses_a_declared_ten_gib_file_before_reading_it() {
    let scratch = Scratch::new();
    let mut header = Header::new_gnu();
    header.set_path("huge.bin").unwrap();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(10 << 30);
    header.set_cksum();
    // No data, no end of archive: reading on would fail with a different error.
    let err = scratch.extract(header.as_bytes()).unwrap_err();
    assert!(
        matches!(err, BundleError::TooLarge { limit } if limit == Limits::default().max_bytes),
        "{err:?}"
    );
    assert!(err.to_string().contains("too large"), "{err}");
    assert!(scratch.dest_is_empty());
    scratch.assert_nothing_outside();
}

#[test]
fn refuses_too_many_entries_and_bytes() {
    let bundle = tar_with(|t| {
        file(t, "a", b"1234");
        file(t, "b", b"1234");
    });
    let scratch = Scratch::new();
    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    assert!(matches!(
        scratch.extract_with(&bundle, &limits),
        Err(BundleError::TooLarge { limit: 2 })
    ));

    let scratch = Scratch::new();
    let limits = Limits {
        max_bytes: 13 + 4 + 3,
        ..Limits::default()
    };
    assert!(matches!(
        scratch.extract_with(&bundle, &limits),
        Err(BundleError::TooLarge { limit: 20 })
    ));
    assert!(!scratch.dest.join("b").exists());
}

#[test]
fn refuses_an_oversized_long_name_header() {
    let scratch = Scratch::new();
    let mut header = Header::new_gnu();
    header.set_path("././@LongLink").unwrap();
    header.set_entry_type(EntryType::GNULongName);
    header.set_size(1 << 30);
    header.set_cksum();
    let err = scratch.extract(header.as_bytes()).unwrap_err();
    assert!(matches!(err, BundleError::Corrupt(_)), "{err:?}");
}

#[test]
fn refuses_sparse_files_and_devices() {
    for (kind, why) in [
        (EntryType::GNUSparse, "sparse"),
        (EntryType::Fifo, "device or a pipe"),
        (EntryType::Char, "device or a pipe"),
        (EntryType::Block, "device or a pipe"),
    ] {
        let scratch = Scratch::new();
        let result = scratch.extract(&tar_with(|t| raw_entry(t, kind, b"odd", b"", 0o644, b"")));
        assert_unsafe(result, "odd", why);
        assert!(!scratch.dest.join("odd").exists());
    }
}

#[test]
fn refuses_duplicate_entries() {
    let scratch = Scratch::new();
    let result = scratch.extract(&tar_with(|t| {
        symlink(t, "x", "Dockerfile");
        file(t, "x", b"overwrite through the link");
    }));
    assert_unsafe(result, "x", "more than once");
    assert_eq!(
        fs::read(scratch.dest.join("Dockerfile")).unwrap(),
        b"FROM scratch\n"
    );
}

#[test]
fn refuses_zip_entry_longer_than_declared() {
    // A stored (uncompressed) entry whose header sizes are patched to claim
    // 4 bytes of the 13 it holds.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("Dockerfile", options).unwrap();
    zip.write_all(b"FROM scratch\n").unwrap();
    let mut bytes = zip.finish().unwrap().into_inner();
    let local = find(&bytes, b"PK\x03\x04") + 22;
    bytes[local..local + 4].copy_from_slice(&4u32.to_le_bytes());
    let central = find(&bytes, b"PK\x01\x02") + 24;
    bytes[central..central + 4].copy_from_slice(&4u32.to_le_bytes());

    let scratch = Scratch::new();
    let err = scratch.extract(&bytes).unwrap_err();
    assert!(matches!(err, BundleError::Corrupt(_)), "{err:?}");
    let written = fs::metadata(scratch.dest.join("Dockerfile"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(written <= 4, "{written}");
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn refuses_what_is_not_an_archive() {
    let scratch = Scratch::new();
    let noise: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let err = scratch.extract(&noise).unwrap_err();
    assert!(matches!(err, BundleError::Unsupported(_)), "{err:?}");
    assert!(matches!(
        scratch.extract(b""),
        Err(BundleError::Unsupported(_))
    ));

    // gzip magic, then garbage.
    let scratch = Scratch::new();
    let mut fake = vec![0x1f, 0x8b];
    fake.extend_from_slice(&noise);
    assert!(matches!(
        scratch.extract(&fake),
        Err(BundleError::Corrupt(_))
    ));

    // zip magic, then garbage.
    let scratch = Scratch::new();
    let mut fake = b"PK\x03\x04".to_vec();
    fake.extend_from_slice(&noise);
    assert!(matches!(
        scratch.extract(&fake),
        Err(BundleError::Corrupt(_))
    ));
    scratch.assert_nothing_outside();
}
