//! IAM policy documents and their evaluation, as AWS documents them: one
//! engine for identity policies, session policies, ECR repository and
//! registry policies, and role trust policies.
//!
//! [`Policy::parse`] validates a document the way IAM does (and refuses what
//! IAM refuses, with its messages); [`authorize`] combines the policies that
//! apply to one request into a decision: an explicit deny anywhere wins; an
//! allow must come from an identity policy or from a resource policy naming the
//! caller; a session policy must allow as well.

mod condition;
pub mod pattern;

use std::collections::HashMap;

use serde_json::Value;

pub use condition::Condition;
use pattern::{literal_wildcards, substitute, wildcard_match};

/// A refused policy document, with IAM's wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl PolicyError {
    fn new(message: impl Into<String>) -> PolicyError {
        PolicyError(message.into())
    }
}

/// What a document is for, which decides the elements it must and must not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or role, or passed as a session policy: no
    /// `Principal`, `Resource` required.
    Identity,
    /// On a repository or the registry: `Principal` required, `Resource` optional
    /// (it defaults to the resource the policy is on).
    Resource,
    /// A role's trust policy: `Principal` required, no `Resource`.
    Trust,
}

/// The request attributes conditions and variables read (`aws:username`,
/// `aws:SourceIp`, `ecr:ResourceTag/team` …). Key names are case-insensitive;
/// every key may hold several values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    values: HashMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    pub fn with(mut self, key: &str, value: &str) -> Context {
        self.set(key, value);
        self
    }

    pub fn with_list(mut self, key: &str, values: &[&str]) -> Context {
        self.values.insert(
            key.to_ascii_lowercase(),
            values.iter().map(|v| v.to_string()).collect(),
        );
        self
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.to_string()]);
    }

    pub fn set_list(&mut self, key: &str, values: Vec<String>) {
        self.values.insert(key.to_ascii_lowercase(), values);
    }

    pub fn values(&self, key: &str) -> Option<&[String]> {
        self.values
            .get(&key.to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    /// The value of a single-valued key.
    pub fn single(&self, key: &str) -> Option<&str> {
        match self.values(key)? {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// Who is asking, as resource and trust policies see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `arn:aws:iam::<account>:root`, `…:user/<path><name>`,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    pub account: String,
    /// For a role session, the role's ARN (a policy naming the role names its sessions).
    pub role_arn: Option<String>,
}

impl Caller {
    fn is_account_root(&self) -> bool {
        self.arn == format!("arn:aws:iam::{}:root", self.account)
    }
}

/// One request to decide.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `ecr:PutImage`.
    pub action: &'a str,
    /// The resource's ARN, or `*` for actions without resource-level permissions.
    pub resource: &'a str,
    /// `None` for an anonymous request.
    pub caller: Option<&'a Caller>,
    pub context: &'a Context,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// A list of patterns, or its complement (`NotAction`, `NotResource`).
#[derive(Clone, Debug, PartialEq)]
struct Patterns {
    values: Vec<String>,
    not: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum PrincipalSpec {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    Everyone,
    /// ARNs and account ids under `AWS`; other kinds (`Service` …) name no
    /// caller berth can have.
    Listed(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
struct Statement {
    sid: Option<String>,
    effect: Effect,
    principal: Option<(PrincipalSpec, bool)>,
    actions: Patterns,
    resources: Option<Patterns>,
    conditions: Vec<Condition>,
}

/// How a statement's principal element covers the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PrincipalMatch {
    /// The statement names the caller's account only: within the account this
    /// delegates to identity policies, it grants nothing by itself.
    Account,
    /// The statement names the caller (or everyone).
    Caller,
}

/// A parsed, validated policy document.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
    /// `Version` 2012-10-17: policy variables are substituted.
    variables: bool,
}

/// What one policy says about one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub deny: bool,
    pub allow: bool,
    /// A statement allows the caller's whole account only: within the
    /// account this delegates to the caller's identity policies.
    pub delegate: bool,
}

impl Policy {
    /// Parses and validates `text` as IAM does for a document of `kind`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let syntax = || PolicyError::new("Syntax errors in policy.");
        let document: Value = serde_json::from_str(text).map_err(|_| syntax())?;
        let object = document.as_object().ok_or_else(syntax)?;
        let mut variables = false;
        let mut statements = None;
        for (field, value) in object {
            match field.as_str() {
                "Version" => match value.as_str() {
                    Some("2012-10-17") => variables = true,
                    Some("2008-10-17") => {}
                    _ => {
                        return Err(PolicyError::new(
                            "The policy must contain a valid version string",
                        ));
                    }
                },
                "Id" => {}
                "Statement" => statements = Some(value),
                _ => return Err(syntax()),
            }
        }
        let statements = match statements {
            Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(syntax()),
        };
        if statements.is_empty() {
            return Err(syntax());
        }
        let statements = statements
            .into_iter()
            .map(|s| Statement::parse(s, kind))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            statements,
            variables,
        })
    }

    /// Whether any statement denies or allows `request`. Statements with a
    /// principal allow only callers they name (not merely their account).
    pub fn evaluate(&self, request: &Request<'_>) -> Verdict {
        let mut verdict = Verdict::default();
        for statement in &self.statements {
            let Some(principal) = statement.principal_match(request.caller) else {
                continue;
            };
            if !statement.applies(request, self.variables) {
                continue;
            }
            match statement.effect {
                Effect::Deny => verdict.deny = true,
                Effect::Allow if principal == PrincipalMatch::Caller => verdict.allow = true,
                Effect::Allow => verdict.delegate = true,
            }
        }
        verdict
    }

    /// What IAM checks when a document is written, beyond its grammar:
    /// statement ids are unique. (Not checked of stored documents, which
    /// were checked when they were written.)
    pub fn check_for_writing(&self) -> Result<(), PolicyError> {
        let mut seen = std::collections::HashSet::new();
        for sid in self.statements.iter().filter_map(|s| s.sid.as_deref()) {
            if !seen.insert(sid) {
                return Err(PolicyError::new(
                    "Statement IDs (SID) in a single policy must be unique.",
                ));
            }
        }
        Ok(())
    }

    /// The `Sid`s of the statements, in order (for messages and tests).
    pub fn sids(&self) -> Vec<Option<&str>> {
        self.statements.iter().map(|s| s.sid.as_deref()).collect()
    }
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(PolicyError::new(format!(
            "Syntax errors in policy: {what} must be a string or a list of strings."
        ))),
    };
    let list = match value {
        Value::Array(items) => items.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        other => vec![one(other)?],
    };
    if list.is_empty() {
        return Err(PolicyError::new(format!(
            "Syntax errors in policy: {what} must not be empty."
        )));
    }
    Ok(list)
}

fn condition_values(value: &Value) -> Result<Vec<String>, PolicyError> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(PolicyError::new("Syntax errors in policy.")),
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

impl Statement {
    fn parse(value: &Value, kind: PolicyKind) -> Result<Statement, PolicyError> {
        let object = value
            .as_object()
            .ok_or_else(|| PolicyError::new("Syntax errors in policy."))?;
        let mut sid = None;
        let mut effect = None;
        let mut principal = None;
        let mut actions = None;
        let mut resources = None;
        let mut conditions = Vec::new();
        for (field, value) in object {
            match field.as_str() {
                "Sid" => {
                    sid = Some(
                        value
                            .as_str()
                            .ok_or_else(|| PolicyError::new("Syntax errors in policy."))?
                            .to_string(),
                    )
                }
                "Effect" => {
                    effect = Some(match value.as_str() {
                        Some("Allow") => Effect::Allow,
                        Some("Deny") => Effect::Deny,
                        _ => {
                            return Err(PolicyError::new(format!(
                                "Invalid effect: {}",
                                value.as_str().unwrap_or("(not a string)")
                            )));
                        }
                    })
                }
                "Principal" | "NotPrincipal" => {
                    if principal.is_some() {
                        return Err(PolicyError::new("Syntax errors in policy."));
                    }
                    principal = Some((parse_principal(value)?, field == "NotPrincipal"));
                }
                "Action" | "NotAction" => {
                    if actions.is_some() {
                        return Err(PolicyError::new("Syntax errors in policy."));
                    }
                    let values = strings(value, field)?;
                    for action in &values {
                        if action != "*" && !action.contains(':') {
                            return Err(PolicyError::new(
                                "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
                            ));
                        }
                    }
                    actions = Some(Patterns {
                        values,
                        not: field == "NotAction",
                    });
                }
                "Resource" | "NotResource" => {
                    if resources.is_some() {
                        return Err(PolicyError::new("Syntax errors in policy."));
                    }
                    let values = strings(value, field)?;
                    for resource in &values {
                        if resource != "*" && !resource.starts_with("arn:") {
                            return Err(PolicyError::new(format!(
                                "Resource {resource} must be in ARN format or \"*\"."
                            )));
                        }
                    }
                    resources = Some(Patterns {
                        values,
                        not: field == "NotResource",
                    });
                }
                "Condition" => {
                    let operators = value
                        .as_object()
                        .ok_or_else(|| PolicyError::new("Syntax errors in policy."))?;
                    for (operator, keys) in operators {
                        let keys = keys
                            .as_object()
                            .ok_or_else(|| PolicyError::new("Syntax errors in policy."))?;
                        for (key, values) in keys {
                            if !key.contains(':') {
                                return Err(PolicyError::new(
                                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
                                ));
                            }
                            conditions.push(Condition::new(
                                operator,
                                key,
                                condition_values(values)?,
                            )?);
                        }
                    }
                }
                _ => return Err(PolicyError::new("Syntax errors in policy.")),
            }
        }
        let effect = effect.ok_or_else(|| PolicyError::new("Missing required field Effect"))?;
        let actions =
            actions.ok_or_else(|| PolicyError::new("Policy statement must contain actions."))?;
        match kind {
            PolicyKind::Identity => {
                if principal.is_some() {
                    return Err(PolicyError::new(
                        "Policy document should not specify a principal.",
                    ));
                }
                if resources.is_none() {
                    return Err(PolicyError::new("Policy statement must contain resources."));
                }
            }
            PolicyKind::Resource | PolicyKind::Trust => {
                if principal.is_none() {
                    return Err(PolicyError::new("Missing required field Principal"));
                }
            }
        }
        Ok(Statement {
            sid,
            effect,
            principal,
            actions,
            resources,
            conditions,
        })
    }

    /// How the principal element covers `caller`; `None` when it does not.
    /// Statements without one (identity policies) cover their holder.
    fn principal_match(&self, caller: Option<&Caller>) -> Option<PrincipalMatch> {
        let Some((spec, not)) = &self.principal else {
            return Some(PrincipalMatch::Caller);
        };
        let named = match (spec, caller) {
            (PrincipalSpec::Everyone, _) => Some(PrincipalMatch::Caller),
            (PrincipalSpec::Listed(_), None) => None,
            (PrincipalSpec::Listed(list), Some(caller)) => list
                .iter()
                .filter_map(|p| principal_covers(p, caller))
                .max(),
        };
        if *not {
            // NotPrincipal: everyone except those named (by ARN).
            match named {
                Some(PrincipalMatch::Caller) => None,
                _ => Some(PrincipalMatch::Caller),
            }
        } else {
            named
        }
    }

    fn applies(&self, request: &Request<'_>, variables: bool) -> bool {
        let action_listed = self
            .actions
            .values
            .iter()
            .any(|a| wildcard_match(a, request.action, true));
        if action_listed == self.actions.not {
            return false;
        }
        if let Some(resources) = &self.resources {
            let listed = resources.values.iter().any(|pattern| {
                let pattern = if variables {
                    match substitute(pattern, request.context) {
                        Some(p) => p,
                        None => return false,
                    }
                } else {
                    pattern.clone()
                };
                literal_wildcards(&pattern, request.resource, false)
            });
            if listed == resources.not {
                return false;
            }
        }
        self.conditions
            .iter()
            .all(|c| c.holds(request.context, variables))
    }
}

fn parse_principal(value: &Value) -> Result<PrincipalSpec, PolicyError> {
    let invalid = || PolicyError::new("Invalid principal in policy");
    match value {
        Value::String(s) if s == "*" => Ok(PrincipalSpec::Everyone),
        Value::Object(kinds) => {
            let mut listed = Vec::new();
            for (kind, values) in kinds {
                let values = strings(values, "Principal").map_err(|_| invalid())?;
                match kind.as_str() {
                    "AWS" => {
                        for v in values {
                            if v == "*" {
                                return Ok(PrincipalSpec::Everyone);
                            }
                            let account = v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit());
                            let arn = v.starts_with("arn:") && !v.contains('*');
                            if !account && !arn {
                                return Err(invalid());
                            }
                            listed.push(v);
                        }
                    }
                    "Service" | "Federated" | "CanonicalUser" => {}
                    _ => return Err(invalid()),
                }
            }
            Ok(PrincipalSpec::Listed(listed))
        }
        _ => Err(invalid()),
    }
}

/// Whether one `AWS` principal value (account id or ARN) names `caller`.
fn principal_covers(principal: &str, caller: &Caller) -> Option<PrincipalMatch> {
    let account_root = format!("arn:aws:iam::{}:root", caller.account);
    if principal == caller.account || principal == account_root {
        return Some(if caller.is_account_root() {
            PrincipalMatch::Caller
        } else {
            PrincipalMatch::Account
        });
    }
    let names_caller = principal == caller.arn || caller.role_arn.as_deref() == Some(principal);
    names_caller.then_some(PrincipalMatch::Caller)
}

/// The policies that apply to one request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Policies<'a> {
    /// The caller's identity policies (its own, its groups', its role's).
    pub identity: &'a [Policy],
    /// The account's root user: identity policies allow it everything.
    pub root: bool,
    /// A session policy given to `AssumeRole`/`GetFederationToken`: it narrows.
    pub session: Option<&'a Policy>,
    /// The policy on the resource (repository, registry).
    pub resource: &'a [Policy],
    /// A role's trust policy, when the request assumes the role: unlike a
    /// resource policy it must allow the caller itself, or allow the caller's
    /// account and the caller's identity policies allow the action too.
    pub trust: Option<&'a Policy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A statement denies it.
    ExplicitDeny,
    /// Nothing allows it.
    ImplicitDeny,
}

/// AWS's evaluation logic within one account: an explicit deny in any policy
/// wins; otherwise an allow from an identity policy (or the root user), or
/// from a resource policy naming the caller, is needed; a session policy must
/// also allow (it bounds identity and resource grants alike).
pub fn authorize(policies: &Policies<'_>, request: &Request<'_>) -> Decision {
    let identity = if request.caller.is_none() {
        Verdict::default()
    } else {
        policies.identity.iter().map(|p| p.evaluate(request)).fold(
            Verdict {
                allow: policies.root,
                ..Verdict::default()
            },
            merge,
        )
    };
    let resource = policies
        .resource
        .iter()
        .map(|p| p.evaluate(request))
        .fold(Verdict::default(), merge);
    let session = policies.session.map(|p| p.evaluate(request));
    let trust = policies.trust.map(|p| p.evaluate(request));
    if identity.deny || resource.deny || session.is_some_and(|s| s.deny) {
        return Decision::ExplicitDeny;
    }
    if trust.is_some_and(|t| t.deny) {
        return Decision::ExplicitDeny;
    }
    let granted = match trust {
        Some(t) => t.allow || (t.delegate && identity.allow),
        None => identity.allow || resource.allow,
    };
    let bounded = session.is_none_or(|s| s.allow);
    if granted && bounded {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

fn merge(a: Verdict, b: Verdict) -> Verdict {
    Verdict {
        deny: a.deny || b.deny,
        allow: a.allow || b.allow,
        delegate: a.delegate || b.delegate,
    }
}

#[cfg(test)]
mod tests;
