//! Reading one layer: decompressed as it streams (gzip, zstd or plain tar),
//! each entry looked at once, only package databases and executables kept
//! (bounded), never the layer.

use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};

use crate::inventory::{Found, LayerInventory, OsRelease, Package};
use crate::parsers;

/// Package databases larger than this are skipped (and said so).
const MAX_TEXT: u64 = 64 << 20;
/// Executables and archives up to this size are held in memory; larger
/// ones go to a temporary file while they are read.
const IN_MEMORY: u64 = 8 << 20;
/// Executables and archives larger than this are not inspected.
const MAX_BINARY: u64 = 1 << 30;
/// A jar inside a jar is read into memory up to this size.
const MAX_NESTED_JAR: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("the layer is not a readable tar stream: {0}")]
    Unreadable(#[from] std::io::Error),
}

/// What a file path is to the scanner.
enum Kind {
    Dpkg,
    Apk,
    OsRelease,
    Python,
    NpmPackage,
    NpmLock,
    Gemspec,
    Jar,
    RpmSqlite,
}

fn classify(path: &str) -> Option<Kind> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
    Some(match path {
        "var/lib/dpkg/status" => Kind::Dpkg,
        "lib/apk/db/installed" => Kind::Apk,
        "var/lib/rpm/rpmdb.sqlite" | "usr/lib/sysimage/rpm/rpmdb.sqlite" => Kind::RpmSqlite,
        "etc/os-release" | "usr/lib/os-release" => Kind::OsRelease,
        _ if parent == "var/lib/dpkg/status.d" && !name.ends_with(".md5sums") => Kind::Dpkg,
        _ if name == "METADATA" && parent.ends_with(".dist-info") => Kind::Python,
        _ if name == "PKG-INFO" && parent.ends_with(".egg-info") => Kind::Python,
        _ if name == "package.json" && in_node_modules(parent) => Kind::NpmPackage,
        _ if name == "package-lock.json" && !path.contains("node_modules/") => Kind::NpmLock,
        _ if name.ends_with(".gemspec") && parent.ends_with("/specifications") => Kind::Gemspec,
        _ if name.ends_with(".jar") || name.ends_with(".war") || name.ends_with(".ear") => {
            Kind::Jar
        }
        _ => return None,
    })
}

/// `…/node_modules/<name>` or `…/node_modules/@scope/<name>`.
fn in_node_modules(dir: &str) -> bool {
    let mut parts = dir.rsplit('/');
    let (Some(last), Some(up)) = (parts.next(), parts.next()) else {
        return false;
    };
    up == "node_modules"
        || (up.starts_with('@') && parts.next() == Some("node_modules") && !last.is_empty())
}

/// Reads a layer blob (gzip, zstd or uncompressed tar) and lists what its
/// package databases, language manifests and executables say.
pub fn scan_layer(reader: impl Read) -> Result<LayerInventory, ScanError> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let head = reader.fill_buf()?;
    let decoded: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(decoded);
    let mut inventory = LayerInventory::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let path = normalize(&raw);
        if path.is_empty() {
            continue;
        }
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
        if name == ".wh..wh..opq" {
            inventory.opaque.push(parent.to_string());
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            inventory.whiteouts.push(join(parent, hidden));
            continue;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let size = entry.size();
        let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
        let packages = match classify(&path) {
            Some(Kind::Gemspec) => parsers::gemspec(name, &path),
            Some(Kind::RpmSqlite) => {
                if size > MAX_BINARY {
                    inventory.skipped.push((path, "too large".into()));
                    continue;
                }
                // SQLite reads a file: the database goes to a temporary one.
                let mut file = tempfile::NamedTempFile::new()?;
                std::io::copy(&mut entry.by_ref().take(size), &mut file)?;
                match crate::rpm::sqlite_db(file.path(), &path) {
                    Ok(packages) => packages,
                    Err(why) => {
                        inventory.skipped.push((path, why));
                        continue;
                    }
                }
            }
            Some(Kind::Jar) => match spooled(&mut entry, size)? {
                Some(mut file) => jar(&mut file, &path, 0),
                None => {
                    inventory.skipped.push((path, "too large".into()));
                    continue;
                }
            },
            Some(kind) => {
                if size > MAX_TEXT {
                    inventory.skipped.push((path, "too large".into()));
                    continue;
                }
                let mut bytes = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut bytes)?;
                let text = String::from_utf8_lossy(&bytes);
                match kind {
                    Kind::Dpkg => parsers::dpkg(&text, &path),
                    Kind::Apk => parsers::apk(&text, &path),
                    Kind::Python => parsers::python(&text, &path),
                    Kind::NpmPackage => parsers::npm_package(&text, &path),
                    Kind::NpmLock => parsers::npm_lock(&text, &path),
                    Kind::OsRelease => {
                        inventory.files.push(Found {
                            path,
                            os: Some(OsRelease::parse(&text)),
                            packages: Vec::new(),
                        });
                        continue;
                    }
                    Kind::Gemspec | Kind::Jar | Kind::RpmSqlite => unreachable!("handled above"),
                }
            }
            None if executable && size > 64 => {
                let mut magic = [0u8; 4];
                let read = read_full(&mut entry, &mut magic)?;
                if read < 4 || magic != *b"\x7fELF" {
                    continue;
                }
                let rest = entry.by_ref();
                let mut whole = Cursor::new(magic.to_vec()).chain(rest);
                match spooled(&mut whole, size)? {
                    Some(mut file) => elf(&mut file, &path),
                    None => {
                        inventory.skipped.push((path, "too large".into()));
                        continue;
                    }
                }
            }
            None => continue,
        };
        if !packages.is_empty() {
            inventory.files.push(Found {
                path,
                os: None,
                packages,
            });
        }
    }
    Ok(inventory)
}

/// `./usr/bin/x` and `/usr/bin/x` are `usr/bin/x`.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn read_full(reader: &mut (impl Read + ?Sized), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A seekable copy of a file being read: in memory when small, else in a
/// temporary file. `None` when larger than [`MAX_BINARY`].
trait Seekable: Read + Seek {}
impl<T: Read + Seek> Seekable for T {}

fn spooled(reader: &mut impl Read, size: u64) -> std::io::Result<Option<Box<dyn Seekable>>> {
    if size > MAX_BINARY {
        return Ok(None);
    }
    if size <= IN_MEMORY {
        let mut bytes = Vec::with_capacity(size as usize);
        reader.take(size).read_to_end(&mut bytes)?;
        return Ok(Some(Box::new(Cursor::new(bytes))));
    }
    let mut file = tempfile::tempfile()?;
    std::io::copy(&mut reader.take(size), &mut file)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(Some(Box::new(file)))
}

/// Maven coordinates in a jar (and in the jars it carries, one level down).
fn jar(file: &mut dyn Seekable, path: &str, depth: u8) -> Vec<Package> {
    let Ok(mut archive) = zip::ZipArchive::new(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    for name in names {
        let Ok(mut member) = archive.by_name(&name) else {
            continue;
        };
        if name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties") {
            let mut text = String::new();
            if member
                .by_ref()
                .take(1 << 20)
                .read_to_string(&mut text)
                .is_ok()
            {
                out.extend(parsers::pom_properties(&text, path));
            }
        } else if depth == 0 && name.ends_with(".jar") && member.size() <= MAX_NESTED_JAR {
            let mut bytes = Vec::new();
            if member.read_to_end(&mut bytes).is_ok() {
                let inner = format!("{path}/{name}");
                out.extend(jar(&mut Cursor::new(bytes), &inner, 1));
            }
        }
    }
    out
}

/// A section of an ELF file: (name, offset, size).
fn elf_sections(file: &mut dyn Seekable) -> Option<Vec<(String, u64, u64)>> {
    let mut header = [0u8; 64];
    file.seek(SeekFrom::Start(0)).ok()?;
    read_full(file, &mut header).ok()?;
    let wide = match header[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = header[5] == 1;
    let u16_at = |b: &[u8], at: usize| -> u64 {
        let v = [b[at], b[at + 1]];
        u64::from(if little {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        })
    };
    let u32_at = |b: &[u8], at: usize| -> u64 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        u64::from(if little {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        })
    };
    let u64_at = |b: &[u8], at: usize| -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[at..at + 8]);
        if little {
            u64::from_le_bytes(v)
        } else {
            u64::from_be_bytes(v)
        }
    };
    let (shoff, entsize, count, strndx) = if wide {
        (
            u64_at(&header, 0x28),
            u16_at(&header, 0x3A),
            u16_at(&header, 0x3C),
            u16_at(&header, 0x3E),
        )
    } else {
        (
            u32_at(&header, 0x20),
            u16_at(&header, 0x2E),
            u16_at(&header, 0x30),
            u16_at(&header, 0x32),
        )
    };
    let min_entsize = if wide { 64 } else { 40 };
    // A section header is 40 or 64 bytes; a little room for odd linkers, no
    // more: the table (at most 256 × 65,535 bytes) must also lie inside the
    // file, so a 64-byte header cannot make us allocate gigabytes.
    if !(min_entsize..=256).contains(&entsize) || count == 0 || strndx >= count {
        return None;
    }
    let length = file.seek(SeekFrom::End(0)).ok()?;
    if shoff.checked_add(entsize * count)? > length {
        return None;
    }
    let mut table = vec![0u8; (entsize * count) as usize];
    file.seek(SeekFrom::Start(shoff)).ok()?;
    if read_full(file, &mut table).ok()? != table.len() {
        return None;
    }
    let raw: Vec<(u64, u64, u64)> = table
        .chunks(entsize as usize)
        .map(|s| {
            if wide {
                (u32_at(s, 0), u64_at(s, 24), u64_at(s, 32))
            } else {
                (u32_at(s, 0), u32_at(s, 16), u32_at(s, 20))
            }
        })
        .collect();
    let (_, str_offset, str_size) = raw[strndx as usize];
    let names = read_at(file, str_offset, str_size, 1 << 20)?;
    Some(
        raw.iter()
            .map(|(name_at, offset, size)| {
                let start = (*name_at as usize).min(names.len());
                let end = names[start..]
                    .iter()
                    .position(|b| *b == 0)
                    .map_or(names.len(), |e| start + e);
                (
                    String::from_utf8_lossy(&names[start..end]).into_owned(),
                    *offset,
                    *size,
                )
            })
            .collect(),
    )
}

fn read_at(file: &mut dyn Seekable, offset: u64, size: u64, limit: u64) -> Option<Vec<u8>> {
    if size > limit {
        return None;
    }
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = vec![0u8; size as usize];
    (read_full(file, &mut bytes).ok()? == bytes.len()).then_some(bytes)
}

/// Go build information (Go ≥ 1.18's inline format) and cargo-auditable's
/// dependency list, from an ELF executable.
fn elf(file: &mut dyn Seekable, path: &str) -> Vec<Package> {
    let Some(sections) = elf_sections(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, offset, size) in sections {
        match name.as_str() {
            ".go.buildinfo" => {
                if let Some(bytes) = read_at(file, offset, size.min(1 << 20), 1 << 20) {
                    out.extend(go_buildinfo(&bytes, path));
                }
            }
            ".dep-v0" => {
                let Some(bytes) = read_at(file, offset, size, 8 << 20) else {
                    continue;
                };
                let mut json = String::new();
                let decoder = flate2::read::ZlibDecoder::new(&bytes[..]);
                if decoder.take(64 << 20).read_to_string(&mut json).is_ok() {
                    out.extend(parsers::cargo_auditable(&json, path));
                }
            }
            _ => {}
        }
    }
    out
}

const GO_MAGIC: &[u8] = b"\xff Go buildinf:";

fn uvarint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn go_buildinfo(bytes: &[u8], path: &str) -> Vec<Package> {
    // Inline strings (flag 2) since Go 1.18; older binaries point into data.
    if !bytes.starts_with(GO_MAGIC) || bytes.len() < 32 || bytes[15] & 2 == 0 {
        return Vec::new();
    }
    let mut at = 32;
    let mut strings = Vec::new();
    for _ in 0..2 {
        let Some((len, used)) = uvarint(&bytes[at..]) else {
            return Vec::new();
        };
        at += used;
        let Some(s) = at.checked_add(len).and_then(|end| bytes.get(at..end)) else {
            return Vec::new();
        };
        strings.push(String::from_utf8_lossy(s).into_owned());
        at += len;
    }
    let mut modinfo = strings[1].as_str();
    // Wrapped in 16-byte sentinels.
    if modinfo.len() >= 33 && modinfo.as_bytes()[modinfo.len() - 17] == b'\n' {
        modinfo = modinfo.get(16..modinfo.len() - 16).unwrap_or(modinfo);
    }
    parsers::go_modinfo(&strings[0], modinfo, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_go_build_info_length_past_memory_is_no_package() {
        // The fuzzer's find: a length varint near usize::MAX overflowed `at + len`.
        let mut bytes = GO_MAGIC.to_vec();
        bytes.extend_from_slice(&[8, 2]);
        bytes.resize(32, 0);
        bytes.extend_from_slice(&[0xff; 9]);
        bytes.push(0x01);
        assert!(go_buildinfo(&bytes, "usr/bin/tool").is_empty());
    }

    fn tar_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data, mode) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(*mode);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn reads_gzip_zstd_and_plain_layers() {
        let tar = tar_of(&[
            ("./etc/os-release", b"ID=alpine\nVERSION_ID=3.19.1\n", 0o644),
            ("lib/apk/db/installed", b"P:musl\nV:1.2.4-r2\n", 0o644),
            ("usr/.wh.share", b"", 0o644),
            ("opt/.wh..wh..opq", b"", 0o644),
            (
                "app/node_modules/@scope/x/package.json",
                br#"{"name":"@scope/x","version":"1.0.0"}"#,
                0o644,
            ),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        for bytes in [tar.clone(), gz, zst] {
            let inv = scan_layer(&bytes[..]).unwrap();
            assert_eq!(inv.whiteouts, ["usr/share"]);
            assert_eq!(inv.opaque, ["opt"]);
            let image = crate::inventory::stack([&inv]);
            assert_eq!(image.os.unwrap().ecosystem().unwrap(), "Alpine:v3.19");
            let names: Vec<&str> = image.packages.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["musl", "@scope/x"]);
        }
    }

    /// A minimal ELF64 executable with the given sections (name, contents).
    fn elf(sections: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut names = vec![0u8];
        let mut name_at = Vec::new();
        for (name, _) in sections
            .iter()
            .map(|(n, c)| (*n, c))
            .chain([(".shstrtab", &Vec::new())])
        {
            name_at.push(names.len() as u32);
            names.extend(name.as_bytes());
            names.push(0);
        }
        let mut body = vec![0u8; 64];
        let mut placed = Vec::new();
        for (_, contents) in sections {
            placed.push((body.len() as u64, contents.len() as u64));
            body.extend(contents);
        }
        placed.push((body.len() as u64, names.len() as u64));
        body.extend(&names);
        let shoff = body.len() as u64;
        body.extend([0u8; 64]); // the null section
        for (i, (offset, size)) in placed.iter().enumerate() {
            let mut header = [0u8; 64];
            header[0..4].copy_from_slice(&name_at[i].to_le_bytes());
            header[4..8].copy_from_slice(&1u32.to_le_bytes());
            header[24..32].copy_from_slice(&offset.to_le_bytes());
            header[32..40].copy_from_slice(&size.to_le_bytes());
            body.extend(header);
        }
        body[0..4].copy_from_slice(b"\x7fELF");
        body[4] = 2;
        body[5] = 1;
        body[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        body[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        let count = sections.len() as u16 + 2;
        body[0x3C..0x3E].copy_from_slice(&count.to_le_bytes());
        body[0x3E..0x40].copy_from_slice(&(count - 1).to_le_bytes());
        body
    }

    #[test]
    fn go_and_cargo_auditable_executables() {
        let modinfo = "path\texample.com/tool\nmod\texample.com/tool\t(devel)\t\ndep\tgolang.org/x/net\tv0.7.0\th1:x=\n";
        let wrapped = format!("{}{modinfo}{}", "0".repeat(16), "1".repeat(16));
        let mut info = GO_MAGIC.to_vec();
        info.extend([8, 2]);
        info.resize(32, 0);
        for s in ["go1.20.1", wrapped.as_str()] {
            info.push(s.len() as u8 & 0x7f | if s.len() > 127 { 0x80 } else { 0 });
            if s.len() > 127 {
                info.push((s.len() >> 7) as u8);
            }
            info.extend(s.as_bytes());
        }
        let deps = br#"{"packages":[{"name":"tool","version":"0.1.0","source":"local"},{"name":"smallvec","version":"1.6.0","source":"crates.io"}]}"#;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, deps).unwrap();
        let binary = elf(&[(".go.buildinfo", info), (".dep-v0", z.finish().unwrap())]);
        let tar = tar_of(&[
            ("usr/local/bin/tool", &binary, 0o755),
            ("usr/share/doc/not-run", &binary, 0o644),
        ]);
        let inv = scan_layer(&tar[..]).unwrap();
        let got: Vec<(&str, &str)> = inv.files[0]
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdlib", "v1.20.1"),
                ("golang.org/x/net", "v0.7.0"),
                ("smallvec", "1.6.0")
            ]
        );
        assert_eq!(
            inv.files.len(),
            1,
            "a file that is not executable is not read as one"
        );
    }

    #[test]
    fn a_section_table_past_the_file_is_not_allocated() {
        // A 64-byte header may claim 65,535 sections of 65,535 bytes (4 GiB).
        let mut binary = elf(&[(".go.buildinfo", b"x".to_vec())]);
        binary[0x3A..0x3C].copy_from_slice(&u16::MAX.to_le_bytes());
        binary[0x3C..0x40].copy_from_slice(&[0xff, 0xff, 0x01, 0x00]);
        assert!(elf_sections(&mut std::io::Cursor::new(&binary)).is_none());
        let mut binary = elf(&[(".go.buildinfo", b"x".to_vec())]);
        binary[0x3C..0x3E].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(elf_sections(&mut std::io::Cursor::new(&binary)).is_none());
        let binary = elf(&[(".go.buildinfo", b"x".to_vec())]);
        assert!(elf_sections(&mut std::io::Cursor::new(&binary)).is_some());
    }

    #[test]
    fn a_truncated_layer_is_an_error_not_a_panic() {
        let tar = tar_of(&[("var/lib/dpkg/status", &[b'x'; 4000], 0o644)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        assert!(scan_layer(&gz[..gz.len() / 2]).is_err());
        assert!(
            scan_layer(&b"not a tar at all, just some bytes"[..]).is_ok_and(|i| i.files.is_empty())
                || scan_layer(&b"not a tar"[..]).is_err()
        );
    }
}
