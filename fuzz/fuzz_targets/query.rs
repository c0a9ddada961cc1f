//! The AWS front doors' input decoding: Query-protocol forms (IAM, STS:
//! `Action=CreateUser&Tags.member.1.Key=…`) decoded to the operation's
//! input and validated against the model; and JSON-protocol bodies (ECR,
//! Secrets Manager) validated against theirs.
//! Input: one byte choosing the service, then the form; for JSON services
//! the operation name, a newline, then the body.
#![no_main]

use std::collections::HashMap;

use berth_server::model::{ECR, IAM, Model, SECRETS, STS};
use libfuzzer_sys::fuzz_target;

fn query(model: &Model, form: &[u8]) {
    let params: HashMap<String, String> = form_urlencoded::parse(form)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let Some(operation) = params.get("Action").and_then(|a| model.operation(a)) else {
        return;
    };
    if let Ok(input) = model.decode_query(operation, &params) {
        let _ = model.validate(operation, &input);
    }
}

fn json(model: &Model, data: &[u8]) {
    let Some(at) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (name, body) = (&data[..at], &data[at + 1..]);
    let Some(operation) = std::str::from_utf8(name).ok().and_then(|n| model.operation(n)) else {
        return;
    };
    if let Ok(input) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = model.validate(operation, &input);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    match choice % 4 {
        0 => query(&IAM, rest),
        1 => query(&STS, rest),
        2 => json(&ECR, rest),
        _ => json(&SECRETS, rest),
    }
});
