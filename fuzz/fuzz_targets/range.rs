//! The blob `Range: bytes=…` header (GET /v2/<name>/blobs/<digest>) and the
//! upload `Content-Range: <start>-<end>` header (PATCH …/blobs/uploads/<id>).
//! Input: 8 bytes of blob size (little-endian), then the header value.
#![no_main]

use berth_server::oci::{content_range_start, requested_range};
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().unwrap());
    let Ok(value) = HeaderValue::from_bytes(&data[8..]) else {
        return;
    };
    for size in [size, size % 4096, 0] {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, value.clone());
        if let Ok(Some(range)) = requested_range(&headers, size) {
            assert!(range.start < range.end && range.end <= size, "{range:?} of {size}");
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_RANGE, value);
    if let Ok(Some((start, end))) = content_range_start(&headers) {
        assert!(start <= end);
    }
});
