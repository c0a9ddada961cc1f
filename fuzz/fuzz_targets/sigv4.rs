//! SigV4: the `Authorization` header, `X-Amz-Date`, and the canonical
//! request rebuilt from the path, query and headers as they arrived.
//! Input lines: Authorization, method, path, query, X-Amz-Date, then
//! `name:value` headers. Also checks that what berth signs, it verifies.
#![no_main]

use berth_core::sigv4::{self, Authorization, Request};
use berth_fuzz::fields;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = fields(text, '\n', 6).into_iter();
    let header = lines.next().unwrap_or_default();
    let method = lines.next().unwrap_or("GET");
    let path = lines.next().unwrap_or("/");
    let query = lines.next().unwrap_or_default();
    let amz_date = lines.next().unwrap_or_default();
    let mut headers: Vec<(String, String)> = lines
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();

    let signed_at = sigv4::parse_amz_date(amz_date);
    if let Some(t) = signed_at {
        // A date that parses prints as one that parses to the same instant.
        assert_eq!(sigv4::parse_amz_date(&sigv4::format_amz_date(t)), Some(t));
    }
    let now = signed_at.unwrap_or(1_440_938_160);
    headers.push(("X-Amz-Date".into(), amz_date.into()));
    let request = Request {
        method,
        path,
        query,
        headers: &headers,
        payload_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    };
    if let Ok(auth) = Authorization::parse(header) {
        let canonical = sigv4::canonical_request(&request, &auth.signed_headers);
        let to_sign = sigv4::string_to_sign(amz_date, &auth.scope(), &canonical);
        let _ = sigv4::sign("secret", &auth, &to_sign);
        // `now` is the server's clock: the date in the request, or another.
        let _ = sigv4::verify(&request, &auth, "secret", now);
        let _ = sigv4::verify(&request, &auth, "secret", 1_714_564_800);
    }

    // What berth's own clients sign (every header, names as tokens), it accepts.
    let date = sigv4::format_amz_date(now.rem_euclid(253_402_300_800));
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !n.eq_ignore_ascii_case("x-amz-date")
        })
        .cloned()
        .collect();
    signed.push(("Host".into(), "registry.example".into()));
    signed.push(("x-amz-date".into(), date.clone()));
    let request = Request {
        headers: &signed,
        ..request
    };
    let header = sigv4::authorization_header(&request, &date, "AKIDEXAMPLE", "s3cr3t", "us-east-1", "ecr");
    let auth = Authorization::parse(&header).expect("berth's own Authorization header parses");
    let at = sigv4::parse_amz_date(&date).expect("berth's own X-Amz-Date parses");
    sigv4::verify(&request, &auth, "s3cr3t", at).expect("berth's own signature verifies");
});
