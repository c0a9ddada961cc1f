//! The rpm database of current RHEL, Fedora, Rocky and AlmaLinux images:
//! `rpmdb.sqlite`, whose `Packages` table holds each package's header blob.
//! The older Berkeley DB (`Packages`) and NDB (`Packages.db`) formats are
//! not read.

use std::path::Path;

use crate::inventory::{Package, Source};

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const ARCH: u32 = 1022;
const SOURCERPM: u32 = 1044;

const INT32: u32 = 4;
const STRING: u32 = 6;
const STRING_ARRAY: u32 = 8;
const I18NSTRING: u32 = 9;

/// The packages of an `rpmdb.sqlite` file; `path` is where the image holds it.
pub fn sqlite_db(file: &Path, path: &str) -> Result<Vec<Package>, String> {
    let uri = format!("file:{}?immutable=1", file.display());
    let connection = rusqlite::Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| e.to_string())?;
    let mut statement = connection
        .prepare("SELECT blob FROM Packages")
        .map_err(|e| e.to_string())?;
    let blobs = statement
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for blob in blobs {
        let blob = blob.map_err(|e| e.to_string())?;
        if let Some(package) = header(&blob, path) {
            out.push(package);
        }
    }
    Ok(out)
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// One package from its header blob (index count, data length, index
/// entries of tag/type/offset/count, then the data), every offset checked.
pub fn header(blob: &[u8], path: &str) -> Option<Package> {
    let entries = be32(blob, 0)? as usize;
    let data_len = be32(blob, 4)? as usize;
    let data_start = 8usize.checked_add(entries.checked_mul(16)?)?;
    let data = blob.get(data_start..data_start.checked_add(data_len)?)?;
    let mut name = None;
    let mut version = None;
    let mut release = None;
    let mut epoch = None;
    let mut arch = None;
    let mut source = None;
    for i in 0..entries {
        let at = 8 + i * 16;
        let (tag, kind, offset) = (
            be32(blob, at)?,
            be32(blob, at + 4)?,
            be32(blob, at + 8)? as usize,
        );
        let string = || -> Option<String> {
            if !matches!(kind, STRING | STRING_ARRAY | I18NSTRING) {
                return None;
            }
            let rest = data.get(offset..)?;
            let end = rest.iter().position(|b| *b == 0)?;
            Some(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        match tag {
            NAME => name = string(),
            VERSION => version = string(),
            RELEASE => release = string(),
            ARCH => arch = string(),
            SOURCERPM => source = string(),
            EPOCH if kind == INT32 => epoch = be32(data, offset),
            _ => {}
        }
    }
    let (name, version, release) = (name?, version?, release?);
    let evr = match epoch {
        Some(e) => format!("{e}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    // `openssl-3.0.7-24.el9.src.rpm` → `openssl`.
    let source_name = source.and_then(|s| {
        let stem = s
            .strip_suffix(".src.rpm")
            .or_else(|| s.strip_suffix(".nosrc.rpm"))?;
        let (rest, _release) = stem.rsplit_once('-')?;
        let (source_name, _version) = rest.rsplit_once('-')?;
        Some(source_name.to_string())
    });
    Some(Package {
        source: Source::Rpm,
        source_name: source_name.filter(|s| *s != name),
        name,
        version: evr,
        source_version: None,
        arch,
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_rpmdb() {
        // Made by rpm 4.18 (`--define "_db_backend sqlite" -i --justdb`) from two spec files.
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/rpm/rpmdb.sqlite");
        let mut packages = sqlite_db(&file, "var/lib/rpm/rpmdb.sqlite").unwrap();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        let got: Vec<(&str, &str, Option<&str>)> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.arch.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("bash", "5.1.8-6.el9", Some("x86_64")),
                ("openssl-libs", "1:3.0.7-24.el9", Some("x86_64"))
            ]
        );
    }

    #[test]
    fn hostile_headers_are_refused_not_panicked_on() {
        assert!(header(&[], "x").is_none());
        assert!(header(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], "x").is_none());
        let mut blob = vec![0, 0, 0, 1, 0, 0, 0, 4];
        blob.extend([0, 0, 3, 232, 0, 0, 0, 6, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1]);
        blob.extend(b"abc\0");
        assert!(header(&blob, "x").is_none());
    }
}
