//! The AWS SigV4 signing test suite, verified by our verifier: every signed
//! request must pass, and pass no longer once a byte of it changes.

use std::fs;
use std::path::Path;

use berth_core::sigv4::{self, Authorization, Request};
use sha2::{Digest as _, Sha256};

struct Case {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    secret: String,
    now: i64,
}

fn load(dir: &Path) -> Option<Case> {
    let context: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("context.json")).ok()?).unwrap();
    // Only S3 signs un-normalized paths; every service berth speaks normalizes.
    if context["normalize"] == false {
        return None;
    }
    let raw = fs::read_to_string(dir.join("header-signed-request.txt")).ok()?;
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let request_line = lines.next()?;
    let mut parts = request_line.splitn(2, ' ');
    let method = parts.next()?.to_string();
    let target = parts.next()?.rsplit_once(' ')?.0.to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // A folded header line continues the previous value.
            let last = headers.last_mut()?;
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':')?;
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let timestamp = context["timestamp"].as_str()?.replace(['-', ':'], "");
    Some(Case {
        name: dir.file_name()?.to_string_lossy().into_owned(),
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: body.as_bytes().to_vec(),
        secret: context["credentials"]["secret_access_key"]
            .as_str()?
            .to_string(),
        now: sigv4::parse_amz_date(&timestamp)?,
    })
}

fn check(case: &Case, body: &[u8], secret: &str) -> Result<(), sigv4::SigV4Error> {
    let auth = case
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| Authorization::parse(v))
        .expect("signed request has Authorization")?;
    let payload = hex::encode(Sha256::digest(body));
    let request = Request {
        method: &case.method,
        path: &case.path,
        query: &case.query,
        headers: &case.headers,
        payload_sha256: &payload,
    };
    sigv4::verify(&request, &auth, secret, case.now)
}

#[test]
fn every_signed_request_of_the_suite_verifies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigv4-suite");
    let mut checked = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(case) = load(&entry.path()) else {
            continue;
        };
        check(&case, &case.body, &case.secret).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        // Any change breaks it: another secret, another body.
        assert!(
            check(&case, &case.body, "not the secret").is_err(),
            "{}",
            case.name
        );
        assert!(
            check(&case, b"tampered", &case.secret).is_err(),
            "{}",
            case.name
        );
        checked.push(case.name);
    }
    assert!(
        checked.len() >= 25,
        "only {} cases ran: {checked:?}",
        checked.len()
    );
}
