//! `PUT /v2/<name>/manifests/<ref>`: the body and its `Content-Type`.
//! Input: one byte choosing the Content-Type, then the body.
#![no_main]

use berth_core::Digest;
use berth_core::manifest::{self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some(OCI_MANIFEST),
    Some(OCI_INDEX),
    Some(DOCKER_MANIFEST),
    Some(DOCKER_MANIFEST_LIST),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    Some("application/json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(choice) % CONTENT_TYPES.len()];
    let Ok(parsed) = manifest::parse(body, content_type) else {
        return;
    };
    // A valid manifest is valid again when sent with its own media type.
    let again = manifest::parse(body, Some(&parsed.media_type))
        .expect("a valid manifest parses again with its own media type");
    assert_eq!(again, parsed);
    for descriptor in parsed
        .blobs
        .iter()
        .chain(&parsed.children)
        .chain(parsed.config.iter())
        .chain(parsed.subject.iter())
    {
        let printed = descriptor.digest.to_string();
        assert_eq!(printed.parse::<Digest>().as_ref(), Ok(&descriptor.digest));
    }
});
