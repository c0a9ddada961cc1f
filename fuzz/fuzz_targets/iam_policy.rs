//! IAM policy documents (identity, resource/repository, trust), as sent to
//! PutRepositoryPolicy, CreatePolicy, CreateRole …, then evaluated.
//! Input: one byte choosing the kind, the document, then optionally a NUL
//! and request lines: action, resource, caller ARN, account, role ARN, and
//! `key=value` context lines.
#![no_main]

use berth_core::policy::{self, Caller, Context, Policies, Policy, PolicyKind, Request};
use berth_fuzz::fields;
use libfuzzer_sys::fuzz_target;

const KINDS: [PolicyKind; 3] = [PolicyKind::Identity, PolicyKind::Resource, PolicyKind::Trust];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let kind = KINDS[usize::from(choice) % KINDS.len()];
    let (document, spec) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(parsed) = Policy::parse(document, kind) else {
        return;
    };
    let _ = parsed.check_for_writing();
    let _ = parsed.sids();

    let mut lines = fields(spec, '\n', 6).into_iter();
    let action = lines.next().filter(|s| !s.is_empty()).unwrap_or("ecr:PutImage");
    let resource = lines
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("arn:aws:ecr:us-east-1:123456789012:repository/team/app");
    let arn = lines
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("arn:aws:iam::123456789012:user/ci/alice");
    let account = lines.next().filter(|s| !s.is_empty()).unwrap_or("123456789012");
    let role_arn = lines.next().filter(|s| !s.is_empty()).map(str::to_string);
    let mut context = Context::new()
        .with("aws:username", "alice")
        .with("aws:SourceIp", "10.1.2.3")
        .with("aws:CurrentTime", "2024-05-01T12:00:00Z")
        .with("aws:SecureTransport", "true")
        .with("ecr:ResourceTag/team", "web")
        .with_list("aws:TagKeys", &["team", "env"]);
    for line in lines.next().unwrap_or_default().lines() {
        if let Some((k, v)) = line.split_once('=') {
            match v.split_once('|') {
                Some(_) => context.set_list(k, v.split('|').map(str::to_string).collect()),
                None => context.set(k, v),
            }
        }
    }
    let callers = [
        Some(Caller {
            arn: arn.to_string(),
            account: account.to_string(),
            role_arn,
        }),
        Some(Caller {
            arn: format!("arn:aws:iam::{account}:root"),
            account: account.to_string(),
            role_arn: None,
        }),
        None,
    ];
    for caller in &callers {
        for (action, resource) in [(action, resource), ("ecr:BatchGetImage", "*"), ("sts:AssumeRole", arn)] {
            let request = Request {
                action,
                resource,
                caller: caller.as_ref(),
                context: &context,
            };
            let verdict = parsed.evaluate(&request);
            let one = std::slice::from_ref(&parsed);
            let as_identity = policy::authorize(
                &Policies {
                    identity: one,
                    ..Policies::default()
                },
                &request,
            );
            let _ = policy::authorize(
                &Policies {
                    identity: one,
                    root: true,
                    session: Some(&parsed),
                    resource: one,
                    trust: Some(&parsed),
                },
                &request,
            );
            // An explicit deny in the only identity policy is the decision.
            if verdict.deny && caller.is_some() {
                assert_eq!(as_identity, policy::Decision::ExplicitDeny);
            }
        }
    }
});
