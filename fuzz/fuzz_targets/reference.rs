//! Names in request paths: repository names, tags, references (tag or
//! digest) and digests; plus the saved state of a chunked upload's hasher.
//! Every value that parses prints back as the same text.
#![no_main]

use berth_core::digest::{Algorithm, Hasher};
use berth_core::{Digest, Reference, RepositoryName, Tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A saved upload state (berth's own storage, not the client's bytes)
    // restores, saves back the same, and finishes (a block counter no
    // upload reaches is refused by `restore`: it overflowed `finish`).
    if let Ok(hasher) = Hasher::restore(data) {
        let saved = hasher.save();
        let restored = Hasher::restore(&saved).expect("a saved state restores");
        assert_eq!(restored.save(), saved);
        let _ = restored.finish();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = text.parse::<RepositoryName>() {
        assert_eq!(name.to_string(), text);
        assert!(name.as_str().len() <= berth_core::name::MAX_REPOSITORY_NAME_LEN);
    }
    if let Ok(tag) = text.parse::<Tag>() {
        assert_eq!(tag.to_string(), text);
        assert!(tag.as_str().len() <= berth_core::name::MAX_TAG_LEN);
    }
    if let Ok(reference) = text.parse::<Reference>() {
        assert_eq!(reference.to_string(), text);
    }
    if let Ok(digest) = text.parse::<Digest>() {
        assert_eq!(digest.to_string(), text);
        let want = match digest.algorithm() {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        };
        assert_eq!(digest.hex().len(), want);
    }
    // `<name>:<tag>` and `<name>@<digest>`, as clients write image references.
    if let Some((name, reference)) = text.split_once('@').or_else(|| text.rsplit_once(':')) {
        let _ = name.parse::<RepositoryName>();
        let _ = reference.parse::<Reference>();
    }
    let _ = Digest::of(Algorithm::Sha256, data).to_string().parse::<Digest>().unwrap();
});
