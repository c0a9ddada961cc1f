//! Helpers shared by the fuzz targets: cutting an input into fields, and
//! building well-formed containers (tar, zip, ELF, SQLite) around fuzzed
//! contents so the scanner's parsers are reached past checksums and magic.

use std::io::Write;

/// `data` cut at each `sep`, at most `n` pieces (the last one takes the rest).
pub fn fields(data: &str, sep: char, n: usize) -> Vec<&str> {
    data.splitn(n, sep).collect()
}

/// Reads fuzz input as a sequence of small records.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    /// A length-prefixed (u16, little-endian) run of bytes; short inputs give what is left.
    pub fn chunk(&mut self) -> Option<&'a [u8]> {
        let lo = self.byte()?;
        let hi = self.byte().unwrap_or(0);
        let len = usize::from(u16::from_le_bytes([lo, hi])).min(self.data.len());
        let (chunk, rest) = self.data.split_at(len);
        self.data = rest;
        Some(chunk)
    }
}

/// A tar stream of (path, contents, mode), with valid headers.
pub fn tar_of(files: &[(String, Vec<u8>, u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_entry_type(tar::EntryType::Regular);
        // Paths the tar crate refuses (`..`, absolute, too long) are the
        // raw-layer target's business; here the entry is just skipped.
        if header.set_path(path).is_err() {
            continue;
        }
        header.set_cksum();
        builder.append(&header, &data[..]).expect("writing to a Vec");
    }
    builder.into_inner().expect("writing to a Vec")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("writing to a Vec");
    gz.finish().expect("writing to a Vec")
}

pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(bytes).expect("writing to a Vec");
    z.finish().expect("writing to a Vec")
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 1).expect("writing to a Vec")
}

/// A zip (jar) of (name, contents), stored uncompressed.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored);
    for (name, data) in files {
        if writer.start_file(*name, options).is_err() {
            continue;
        }
        writer.write_all(data).expect("writing to a Vec");
    }
    writer.finish().expect("writing to a Vec").into_inner()
}

/// A minimal ELF64 little-endian file with the given sections (name, contents),
/// as the scanner's own tests build them.
pub fn elf(sections: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut names = vec![0u8];
    let mut name_at = Vec::new();
    let empty = Vec::new();
    for (name, _) in sections
        .iter()
        .map(|(n, c)| (*n, c))
        .chain([(".shstrtab", &empty)])
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

/// Go ≥ 1.18 inline build information: the magic, flags, then two
/// uvarint-prefixed strings (the toolchain version and the module info).
pub fn go_buildinfo(go_version: &[u8], modinfo: &[u8]) -> Vec<u8> {
    let mut info = b"\xff Go buildinf:".to_vec();
    info.extend([8, 2]);
    info.resize(32, 0);
    for s in [go_version, modinfo] {
        let mut n = s.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                info.push(b);
                break;
            }
            info.push(b | 0x80);
        }
        info.extend(s);
    }
    info
}

/// The bytes of an `rpmdb.sqlite` whose `Packages` table holds `blobs`.
pub fn rpmdb_sqlite(blobs: &[&[u8]]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("rpmdb.sqlite");
    {
        let db = rusqlite::Connection::open(&path).expect("a new database");
        db.execute_batch(
            "PRAGMA journal_mode=OFF; CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
        )
        .expect("creating the table");
        for blob in blobs {
            db.execute("INSERT INTO Packages (blob) VALUES (?1)", [blob])
                .expect("inserting a row");
        }
    }
    std::fs::read(&path).expect("reading the database back")
}

/// An rpm header blob with string tags (tag, value) and an optional epoch,
/// in the layout `berth_scan`'s rpm reader expects.
pub fn rpm_header(strings: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
    let mut index = Vec::new();
    let mut data = Vec::new();
    let mut entries = 0u32;
    for (tag, value) in strings {
        index.extend(tag.to_be_bytes());
        index.extend(6u32.to_be_bytes());
        index.extend((data.len() as u32).to_be_bytes());
        index.extend(1u32.to_be_bytes());
        data.extend(value.as_bytes());
        data.push(0);
        entries += 1;
    }
    if let Some(e) = epoch {
        index.extend(1003u32.to_be_bytes());
        index.extend(4u32.to_be_bytes());
        index.extend((data.len() as u32).to_be_bytes());
        index.extend(1u32.to_be_bytes());
        data.extend(e.to_be_bytes());
        entries += 1;
    }
    let mut blob = entries.to_be_bytes().to_vec();
    blob.extend((data.len() as u32).to_be_bytes());
    blob.extend(index);
    blob.extend(data);
    blob
}
