//! The evaluator against the behaviour AWS documents, case by case, and
//! properties that must hold for any document.

use proptest::prelude::*;

use super::*;

const ACCOUNT: &str = "123456789012";
const REPO: &str = "arn:aws:ecr:us-east-1:123456789012:repository/randserver";
const OTHER_REPO: &str = "arn:aws:ecr:us-east-1:123456789012:repository/other";

fn identity(text: &str) -> Policy {
    Policy::parse(text, PolicyKind::Identity).unwrap()
}

fn resource(text: &str) -> Policy {
    Policy::parse(text, PolicyKind::Resource).unwrap()
}

fn user(name: &str) -> Caller {
    Caller {
        arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
        account: ACCOUNT.into(),
        role_arn: None,
    }
}

fn session(role: &str) -> Caller {
    Caller {
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/s1"),
        account: ACCOUNT.into(),
        role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/{role}")),
    }
}

fn root() -> Caller {
    Caller {
        arn: format!("arn:aws:iam::{ACCOUNT}:root"),
        account: ACCOUNT.into(),
        role_arn: None,
    }
}

fn decide(
    identity: &[Policy],
    resource: &[Policy],
    session: Option<&Policy>,
    caller: Option<&Caller>,
    action: &str,
    target: &str,
    context: &Context,
) -> Decision {
    authorize(
        &Policies {
            identity,
            root: caller.is_some_and(|c| c.arn.ends_with(":root")),
            session,
            resource,
            trust: None,
        },
        &Request {
            action,
            resource: target,
            caller,
            context,
        },
    )
}

const WALKTHROUGH: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:GetRepositoryPolicy","ecr:DescribeRepositories","ecr:ListImages","ecr:DescribeImages","ecr:BatchGetImage","ecr:InitiateLayerUpload","ecr:UploadLayerPart","ecr:CompleteLayerUpload","ecr:PutImage"],"Resource":"arn:aws:ecr:us-east-1:123456789012:repository/randserver"}]}"#;

#[test]
fn the_ecr_walkthrough_policy() {
    let policies = [identity(WALKTHROUGH)];
    let johndoe = user("johndoe");
    let ctx = Context::new();
    let check = |action, target| decide(&policies, &[], None, Some(&johndoe), action, target, &ctx);
    assert_eq!(check("ecr:PutImage", REPO), Decision::Allow);
    assert_eq!(check("ecr:BatchGetImage", REPO), Decision::Allow);
    assert_eq!(check("ecr:PutImage", OTHER_REPO), Decision::ImplicitDeny);
    assert_eq!(check("ecr:DeleteRepository", REPO), Decision::ImplicitDeny);
    // GetAuthorizationToken is evaluated against "*": the repository ARN does not cover it.
    assert_eq!(
        check("ecr:GetAuthorizationToken", "*"),
        Decision::ImplicitDeny
    );
}

#[test]
fn explicit_deny_wins_everywhere() {
    let allow = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#,
    );
    let deny = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"ecr:Delete*","Resource":"*"}}"#,
    );
    let ctx = Context::new();
    let bob = user("bob");
    assert_eq!(
        decide(
            &[allow.clone(), deny.clone()],
            &[],
            None,
            Some(&bob),
            "ecr:DeleteRepository",
            REPO,
            &ctx
        ),
        Decision::ExplicitDeny
    );
    // A repository policy's deny binds even the root user.
    let repo_deny = resource(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","Action":"ecr:PutImage"}}"#,
    );
    assert_eq!(
        decide(
            &[],
            &[repo_deny],
            None,
            Some(&root()),
            "ecr:PutImage",
            REPO,
            &ctx
        ),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(&[], &[], None, Some(&root()), "ecr:PutImage", REPO, &ctx),
        Decision::Allow
    );
}

#[test]
fn resource_policies_grant_to_named_callers_and_to_everyone() {
    let ctx = Context::new();
    let public = resource(
        r#"{"Version":"2008-10-17","Statement":[{"Sid":"Public","Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}"#,
    );
    assert_eq!(
        decide(
            &[],
            std::slice::from_ref(&public),
            None,
            None,
            "ecr:BatchGetImage",
            REPO,
            &ctx
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(&[], &[public], None, None, "ecr:PutImage", REPO, &ctx),
        Decision::ImplicitDeny
    );
    let to_bob = resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"ecr:*"}]}"#,
    );
    assert_eq!(
        decide(
            &[],
            std::slice::from_ref(&to_bob),
            None,
            Some(&user("bob")),
            "ecr:PutImage",
            REPO,
            &ctx
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(
            &[],
            &[to_bob],
            None,
            Some(&user("eve")),
            "ecr:PutImage",
            REPO,
            &ctx
        ),
        Decision::ImplicitDeny
    );
    // Naming the account delegates to identity policies: alone it grants users nothing.
    let to_account = resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"ecr:*"}]}"#,
    );
    assert_eq!(
        decide(
            &[],
            &[to_account],
            None,
            Some(&user("bob")),
            "ecr:PutImage",
            REPO,
            &ctx
        ),
        Decision::ImplicitDeny
    );
    // Naming a role names its sessions.
    let to_role = resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:role/ci"]},"Action":"ecr:BatchGetImage"}]}"#,
    );
    assert_eq!(
        decide(
            &[],
            &[to_role],
            None,
            Some(&session("ci")),
            "ecr:BatchGetImage",
            REPO,
            &ctx
        ),
        Decision::Allow
    );
}

#[test]
fn not_principal_denies_everyone_else() {
    let ctx = Context::new();
    let policy = resource(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/admin"},"Action":"ecr:DeleteRepository"}]}"#,
    );
    let all = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
    );
    let check = |who: &Caller| {
        decide(
            std::slice::from_ref(&all),
            std::slice::from_ref(&policy),
            None,
            Some(who),
            "ecr:DeleteRepository",
            REPO,
            &ctx,
        )
    };
    assert_eq!(check(&user("admin")), Decision::Allow);
    assert_eq!(check(&user("bob")), Decision::ExplicitDeny);
}

#[test]
fn session_policies_intersect() {
    let ctx = Context::new();
    let role = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#,
    );
    let narrow = identity(&format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"ecr:*","Resource":"{REPO}"}}}}"#
    ));
    let caller = session("ci");
    let check = |target| {
        decide(
            std::slice::from_ref(&role),
            &[],
            Some(&narrow),
            Some(&caller),
            "ecr:PutImage",
            target,
            &ctx,
        )
    };
    assert_eq!(check(REPO), Decision::Allow);
    assert_eq!(check(OTHER_REPO), Decision::ImplicitDeny);
    // A session policy grants nothing the role does not have.
    assert_eq!(
        decide(
            &[],
            &[],
            Some(&narrow),
            Some(&caller),
            "ecr:PutImage",
            REPO,
            &ctx
        ),
        Decision::ImplicitDeny
    );
}

#[test]
fn not_action_and_not_resource_are_complements() {
    let ctx = Context::new();
    let policy = identity(&format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","NotAction":"ecr:Delete*","NotResource":"{OTHER_REPO}"}}}}"#
    ));
    let bob = user("bob");
    let check = |action, target| {
        decide(
            std::slice::from_ref(&policy),
            &[],
            None,
            Some(&bob),
            action,
            target,
            &ctx,
        )
    };
    assert_eq!(check("ecr:PutImage", REPO), Decision::Allow);
    assert_eq!(check("ecr:DeleteRepository", REPO), Decision::ImplicitDeny);
    assert_eq!(check("ecr:PutImage", OTHER_REPO), Decision::ImplicitDeny);
}

#[test]
fn per_user_repositories_from_one_policy() {
    let policy = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}/*"}}"#,
    );
    let ctx = Context::new().with("aws:username", "alice");
    let alice = user("alice");
    let check = |target: &str| {
        decide(
            std::slice::from_ref(&policy),
            &[],
            None,
            Some(&alice),
            "ecr:PutImage",
            target,
            &ctx,
        )
    };
    assert_eq!(
        check("arn:aws:ecr:us-east-1:123456789012:repository/alice/app"),
        Decision::Allow
    );
    assert_eq!(
        check("arn:aws:ecr:us-east-1:123456789012:repository/bob/app"),
        Decision::ImplicitDeny
    );
    // Without the variable's value the statement matches nothing.
    let nobody = Context::new();
    assert_eq!(
        decide(
            std::slice::from_ref(&policy),
            &[],
            None,
            Some(&alice),
            "ecr:PutImage",
            "arn:aws:ecr:us-east-1:123456789012:repository/alice/app",
            &nobody
        ),
        Decision::ImplicitDeny
    );
    // Version 2008-10-17 takes `${…}` literally.
    let old = identity(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}/*"}}"#,
    );
    assert_eq!(
        decide(
            &[old],
            &[],
            None,
            Some(&alice),
            "ecr:PutImage",
            "arn:aws:ecr:us-east-1:123456789012:repository/alice/app",
            &ctx
        ),
        Decision::ImplicitDeny
    );
}

#[test]
fn conditions_all_hold_together() {
    let policy = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*",
            "Condition":{"Bool":{"aws:SecureTransport":"true"},"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}}}"#,
    );
    let bob = user("bob");
    let check = |ctx: &Context| {
        decide(
            std::slice::from_ref(&policy),
            &[],
            None,
            Some(&bob),
            "ecr:PutImage",
            REPO,
            ctx,
        )
    };
    let both = Context::new()
        .with("aws:SecureTransport", "true")
        .with("aws:SourceIp", "192.168.1.9");
    assert_eq!(check(&both), Decision::Allow);
    let plain = Context::new()
        .with("aws:SecureTransport", "false")
        .with("aws:SourceIp", "192.168.1.9");
    assert_eq!(check(&plain), Decision::ImplicitDeny);
    let elsewhere = Context::new()
        .with("aws:SecureTransport", "true")
        .with("aws:SourceIp", "203.0.113.1");
    assert_eq!(check(&elsewhere), Decision::ImplicitDeny);
}

#[test]
fn tag_based_access() {
    let policy = identity(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"${aws:PrincipalTag/team}"}}},
            {"Effect":"Deny","Action":"ecr:TagResource","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["team"]}}}]}"#,
    );
    let bob = user("bob");
    let web = Context::new()
        .with("aws:PrincipalTag/team", "web")
        .with("aws:ResourceTag/team", "web");
    let check = |action, ctx: &Context| {
        decide(
            std::slice::from_ref(&policy),
            &[],
            None,
            Some(&bob),
            action,
            REPO,
            ctx,
        )
    };
    assert_eq!(check("ecr:PutImage", &web), Decision::Allow);
    let db = Context::new()
        .with("aws:PrincipalTag/team", "web")
        .with("aws:ResourceTag/team", "db");
    assert_eq!(check("ecr:PutImage", &db), Decision::ImplicitDeny);
    let retag = web.clone().with_list("aws:TagKeys", &["team", "env"]);
    assert_eq!(check("ecr:TagResource", &retag), Decision::ExplicitDeny);
}

#[test]
fn malformed_documents_get_iams_messages() {
    let cases = [
        ("not json", PolicyKind::Identity, "Syntax errors in policy."),
        (
            r#"{"Version":"2012-10-17"}"#,
            PolicyKind::Identity,
            "Syntax errors in policy.",
        ),
        (
            r#"{"Version":"2013-01-01","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#,
            PolicyKind::Identity,
            "The policy must contain a valid version string",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
            PolicyKind::Identity,
            "Policy statement must contain resources.",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            PolicyKind::Identity,
            "Policy statement must contain actions.",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"}]}"#,
            PolicyKind::Identity,
            "Policy document should not specify a principal.",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
            PolicyKind::Resource,
            "Missing required field Principal",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Permit","Action":"ecr:*","Resource":"*"}]}"#,
            PolicyKind::Identity,
            "Invalid effect: Permit",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"PutImage","Resource":"*"}]}"#,
            PolicyKind::Identity,
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"repo"}]}"#,
            PolicyKind::Identity,
            "Resource repo must be in ARN format or \"*\".",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEqualz":{"aws:username":"a"}}}]}"#,
            PolicyKind::Identity,
            "Invalid Condition type : StringEqualz",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"ecr:*"}]}"#,
            PolicyKind::Resource,
            "Invalid principal in policy",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Extra":1}]}"#,
            PolicyKind::Identity,
            "Syntax errors in policy.",
        ),
    ];
    for (text, kind, message) in cases {
        assert_eq!(
            Policy::parse(text, kind).unwrap_err().0,
            message,
            "for {text}"
        );
    }
}

#[test]
fn actions_match_case_insensitively_and_resources_do_not() {
    let policy = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ECR:putimage","Resource":"arn:aws:ecr:us-east-1:123456789012:repository/RandServer"}}"#,
    );
    let bob = user("bob");
    let ctx = Context::new();
    let upper = "arn:aws:ecr:us-east-1:123456789012:repository/RandServer";
    assert_eq!(
        decide(
            std::slice::from_ref(&policy),
            &[],
            None,
            Some(&bob),
            "ecr:PutImage",
            upper,
            &ctx
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(&[policy], &[], None, Some(&bob), "ecr:PutImage", REPO, &ctx),
        Decision::ImplicitDeny
    );
}

fn action_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "ecr:PutImage",
        "ecr:BatchGetImage",
        "ecr:DeleteRepository",
        "ecr:GetAuthorizationToken",
        "ecr:ListImages",
        "iam:CreateUser",
    ])
    .prop_map(String::from)
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "*",
        "ecr:*",
        "ecr:Put*",
        "ecr:*Image",
        "ecr:BatchGetImage",
        "iam:*",
        "ecr:?utImage",
    ])
    .prop_map(String::from)
}

fn statement_json(effect: &str, not_action: bool, patterns: &[String]) -> String {
    format!(
        r#"{{"Effect":"{effect}","{}":{},"Resource":"*"}}"#,
        if not_action { "NotAction" } else { "Action" },
        serde_json::to_string(patterns).unwrap()
    )
}

proptest! {
    /// Adding a matching deny statement to any policy set denies the request.
    #[test]
    fn deny_always_wins(
        allows in prop::collection::vec(prop::collection::vec(pattern_strategy(), 1..4), 0..4),
        action in action_strategy(),
    ) {
        let mut statements: Vec<String> =
            allows.iter().map(|p| statement_json("Allow", false, p)).collect();
        statements.push(statement_json("Deny", false, std::slice::from_ref(&action)));
        let policy = identity(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statements.join(",")
        ));
        let ctx = Context::new();
        for caller in [user("bob"), root(), session("ci")] {
            prop_assert_eq!(
                decide(std::slice::from_ref(&policy), &[], None, Some(&caller), &action, REPO, &ctx),
                Decision::ExplicitDeny
            );
        }
    }

    /// `NotAction` covers exactly the actions `Action` does not.
    #[test]
    fn not_action_is_the_complement(
        patterns in prop::collection::vec(pattern_strategy(), 1..4),
        action in action_strategy(),
    ) {
        let with = |not| identity(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statement_json("Allow", not, &patterns)
        ));
        let ctx = Context::new();
        let bob = user("bob");
        let allowed = |p: Policy| {
            decide(&[p], &[], None, Some(&bob), &action, REPO, &ctx) == Decision::Allow
        };
        prop_assert_ne!(allowed(with(false)), allowed(with(true)));
    }

    /// A wildcard pattern matches what a regular expression of it matches.
    #[test]
    fn wildcards_agree_with_a_reference(
        pattern in "[ab*?]{0,6}",
        text in "[ab]{0,6}",
    ) {
        fn reference(p: &[char], t: &[char]) -> bool {
            match (p.first(), t.first()) {
                (None, None) => true,
                (Some('*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
                (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
                (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
                _ => false,
            }
        }
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(wildcard_match(&pattern, &text, false), reference(&p, &t));
    }

    /// Without any allow, nothing is allowed except to the root user.
    #[test]
    fn default_is_deny(action in action_strategy()) {
        let ctx = Context::new();
        prop_assert_eq!(
            decide(&[], &[], None, Some(&user("bob")), &action, REPO, &ctx),
            Decision::ImplicitDeny
        );
        prop_assert_eq!(decide(&[], &[], None, None, &action, REPO, &ctx), Decision::ImplicitDeny);
        prop_assert_eq!(decide(&[], &[], None, Some(&root()), &action, REPO, &ctx), Decision::Allow);
    }
}

/// AssumeRole: the trust policy must allow the caller by its ARN, or allow
/// its account and the caller's identity policies allow `sts:AssumeRole`.
#[test]
fn trust_policies_must_admit_the_caller() {
    const ROLE: &str = "arn:aws:iam::123456789012:role/deployer";
    let trust = |principal: &str| {
        Policy::parse(
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"sts:AssumeRole"}}]}}"#
            ),
            PolicyKind::Trust,
        )
        .unwrap()
    };
    let may_assume = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#,
    );
    let alice = user("alice");
    let ctx = Context::new();
    let decide_trust = |identity: &[Policy], trust: &Policy| {
        authorize(
            &Policies {
                identity,
                root: false,
                session: None,
                resource: &[],
                trust: Some(trust),
            },
            &Request {
                action: "sts:AssumeRole",
                resource: ROLE,
                caller: Some(&alice),
                context: &ctx,
            },
        )
    };
    let own_arn = trust(&format!(r#"{{"AWS":"{}"}}"#, alice.arn));
    let other_user = trust(r#"{"AWS":"arn:aws:iam::123456789012:user/bob"}"#);
    let account = trust(r#"{"AWS":"arn:aws:iam::123456789012:root"}"#);
    let service = trust(r#"{"Service":"omics.amazonaws.com"}"#);
    let allowed = std::slice::from_ref(&may_assume);
    // Named by its own ARN: no identity policy needed.
    assert_eq!(decide_trust(&[], &own_arn), Decision::Allow);
    // Another user named: the caller's identity allow does not help.
    assert_eq!(decide_trust(allowed, &other_user), Decision::ImplicitDeny);
    // The account delegates: the identity policy must allow as well.
    assert_eq!(decide_trust(&[], &account), Decision::ImplicitDeny);
    assert_eq!(decide_trust(allowed, &account), Decision::Allow);
    // A service principal admits only that service.
    assert_eq!(decide_trust(allowed, &service), Decision::ImplicitDeny);
}
