//! The `Condition` element: operators, set qualifiers, `…IfExists`, and how
//! each compares the request's context values with the policy's.

use std::net::IpAddr;

use super::pattern::{arn_match, literal_wildcards, substitute};
use super::{Context, PolicyError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    ArnEquals,
    ArnLike,
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetQualifier {
    ForAnyValue,
    ForAllValues,
}

/// One key of one operator: `"StringLike": {"aws:username": ["a*", "b*"]}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    comparison: Comparison,
    /// `StringNotEquals`, `NotIpAddress`, `ArnNotLike` …: true when no value matches.
    negated: bool,
    if_exists: bool,
    qualifier: Option<SetQualifier>,
    key: String,
    values: Vec<String>,
}

impl Condition {
    /// Parses an operator name such as `ForAllValues:StringLikeIfExists`.
    pub fn new(operator: &str, key: &str, values: Vec<String>) -> Result<Condition, PolicyError> {
        let invalid = || PolicyError::new(format!("Invalid Condition type : {operator}"));
        let (qualifier, rest) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else {
            (None, operator)
        };
        let (name, if_exists) = match rest.strip_suffix("IfExists") {
            Some(name) => (name, true),
            None => (rest, false),
        };
        use Comparison::*;
        let (comparison, negated) = match name {
            "StringEquals" => (StringEquals, false),
            "StringNotEquals" => (StringEquals, true),
            "StringEqualsIgnoreCase" => (StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (StringEqualsIgnoreCase, true),
            "StringLike" => (StringLike, false),
            "StringNotLike" => (StringLike, true),
            "NumericEquals" => (NumericEquals, false),
            "NumericNotEquals" => (NumericEquals, true),
            "NumericLessThan" => (NumericLessThan, false),
            "NumericLessThanEquals" => (NumericLessThanEquals, false),
            "NumericGreaterThan" => (NumericGreaterThan, false),
            "NumericGreaterThanEquals" => (NumericGreaterThanEquals, false),
            "DateEquals" => (DateEquals, false),
            "DateNotEquals" => (DateEquals, true),
            "DateLessThan" => (DateLessThan, false),
            "DateLessThanEquals" => (DateLessThanEquals, false),
            "DateGreaterThan" => (DateGreaterThan, false),
            "DateGreaterThanEquals" => (DateGreaterThanEquals, false),
            "Bool" => (Bool, false),
            "BinaryEquals" => (BinaryEquals, false),
            "IpAddress" => (IpAddress, false),
            "NotIpAddress" => (IpAddress, true),
            "ArnEquals" => (ArnEquals, false),
            "ArnNotEquals" => (ArnEquals, true),
            "ArnLike" => (ArnLike, false),
            "ArnNotLike" => (ArnLike, true),
            "Null" if qualifier.is_none() && !if_exists => (Null, false),
            _ => return Err(invalid()),
        };
        for value in &values {
            let valid = match comparison {
                NumericEquals
                | NumericLessThan
                | NumericLessThanEquals
                | NumericGreaterThan
                | NumericGreaterThanEquals => value.parse::<f64>().is_ok(),
                DateEquals
                | DateLessThan
                | DateLessThanEquals
                | DateGreaterThan
                | DateGreaterThanEquals => value.contains("${") || parse_date(value).is_some(),
                Bool | Null => {
                    value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
                }
                IpAddress => parse_cidr(value).is_some(),
                _ => true,
            };
            if !valid {
                return Err(PolicyError::new(format!(
                    "Invalid value '{value}' for condition {operator} on key {key}"
                )));
            }
        }
        Ok(Condition {
            comparison,
            negated,
            if_exists,
            qualifier,
            key: key.to_string(),
            values,
        })
    }

    /// Whether the condition holds for the request described by `context`.
    pub fn holds(&self, context: &Context, variables: bool) -> bool {
        let present = context.values(&self.key);
        if self.comparison == Comparison::Null {
            let absent = present.is_none_or(|v| v.is_empty());
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == absent);
        }
        let values: Vec<String> = self
            .values
            .iter()
            .filter_map(|v| {
                if variables {
                    substitute(v, context)
                } else {
                    Some(v.clone())
                }
            })
            .collect();
        // Does one context value satisfy the operator (before negation)?
        let matches = |actual: &str| values.iter().any(|expected| self.compare(actual, expected));
        let satisfied = |actual: &str| matches(actual) != self.negated;
        match (present, self.qualifier) {
            (None, Some(SetQualifier::ForAllValues)) => true,
            (None, Some(SetQualifier::ForAnyValue)) => false,
            (None, None) => self.if_exists || self.negated,
            (Some(actual), Some(SetQualifier::ForAllValues)) => actual.iter().all(|a| satisfied(a)),
            (Some(actual), Some(SetQualifier::ForAnyValue)) => actual.iter().any(|a| satisfied(a)),
            (Some(actual), None) => {
                if self.negated {
                    !actual.iter().any(|a| matches(a))
                } else {
                    actual.iter().any(|a| matches(a))
                }
            }
        }
    }

    fn compare(&self, actual: &str, expected: &str) -> bool {
        use Comparison::*;
        let numbers = || Some((actual.parse::<f64>().ok()?, expected.parse::<f64>().ok()?));
        let dates = || Some((parse_date(actual)?, parse_date(expected)?));
        match self.comparison {
            StringEquals => actual == expected,
            StringEqualsIgnoreCase => actual.to_lowercase() == expected.to_lowercase(),
            StringLike => literal_wildcards(expected, actual, false),
            NumericEquals => numbers().is_some_and(|(a, e)| a == e),
            NumericLessThan => numbers().is_some_and(|(a, e)| a < e),
            NumericLessThanEquals => numbers().is_some_and(|(a, e)| a <= e),
            NumericGreaterThan => numbers().is_some_and(|(a, e)| a > e),
            NumericGreaterThanEquals => numbers().is_some_and(|(a, e)| a >= e),
            DateEquals => dates().is_some_and(|(a, e)| a == e),
            DateLessThan => dates().is_some_and(|(a, e)| a < e),
            DateLessThanEquals => dates().is_some_and(|(a, e)| a <= e),
            DateGreaterThan => dates().is_some_and(|(a, e)| a > e),
            DateGreaterThanEquals => dates().is_some_and(|(a, e)| a >= e),
            Bool => actual.eq_ignore_ascii_case(expected),
            BinaryEquals => actual == expected,
            IpAddress => {
                let (Ok(ip), Some((net, bits))) = (actual.parse::<IpAddr>(), parse_cidr(expected))
                else {
                    return false;
                };
                in_network(ip, net, bits)
            }
            ArnEquals | ArnLike => arn_match(expected, actual),
            Null => false,
        }
    }
}

/// Seconds since the epoch of an ISO 8601 date/time or of an epoch number.
fn parse_date(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds);
    }
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    let time = humantime::parse_rfc3339_weak(full.trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(&full).ok())?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

/// `203.0.113.0/24`, `2001:db8::/32`, or a single address.
fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, bits) = match text.split_once('/') {
        Some((address, bits)) => (address, Some(bits.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((address, bits))
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => (u32::from(ip) as u128, u32::from(net) as u128, 32),
        (IpAddr::V6(ip), IpAddr::V6(net)) => (u128::from(ip), u128::from(net), 128),
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - bits as u32;
    (ip >> shift) == (net >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(operator: &str, key: &str, values: &[&str]) -> Condition {
        Condition::new(
            operator,
            key,
            values.iter().map(|v| v.to_string()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn strings_and_negation() {
        let ctx = Context::new().with("aws:username", "johndoe");
        assert!(condition("StringEquals", "aws:username", &["x", "johndoe"]).holds(&ctx, true));
        assert!(!condition("StringEquals", "aws:username", &["JohnDoe"]).holds(&ctx, true));
        assert!(
            condition("StringEqualsIgnoreCase", "aws:username", &["JohnDoe"]).holds(&ctx, true)
        );
        assert!(condition("StringLike", "aws:username", &["john*"]).holds(&ctx, true));
        assert!(!condition("StringNotLike", "aws:username", &["john*"]).holds(&ctx, true));
        assert!(condition("StringNotEquals", "aws:username", &["x", "y"]).holds(&ctx, true));
        // Absent keys: positive operators fail, negated ones hold, IfExists holds.
        assert!(!condition("StringEquals", "aws:userid", &["x"]).holds(&ctx, true));
        assert!(condition("StringNotEquals", "aws:userid", &["x"]).holds(&ctx, true));
        assert!(condition("StringEqualsIfExists", "aws:userid", &["x"]).holds(&ctx, true));
        assert!(!condition("StringEqualsIfExists", "aws:username", &["x"]).holds(&ctx, true));
        // Key names are case-insensitive.
        assert!(condition("StringEquals", "AWS:UserName", &["johndoe"]).holds(&ctx, true));
        // Variables in values.
        assert!(condition("StringEquals", "aws:username", &["${aws:username}"]).holds(&ctx, true));
    }

    #[test]
    fn numbers_dates_bools_ips_arns() {
        let ctx = Context::new()
            .with("n", "10")
            .with("aws:CurrentTime", "2026-11-24T05:00:00Z")
            .with("aws:SecureTransport", "true")
            .with("aws:SourceIp", "203.0.113.7")
            .with(
                "aws:PrincipalArn",
                "arn:aws:iam::123456789012:user/ci/robot",
            );
        assert!(condition("NumericLessThan", "n", &["11"]).holds(&ctx, true));
        assert!(!condition("NumericGreaterThan", "n", &["10"]).holds(&ctx, true));
        assert!(condition("NumericGreaterThanEquals", "n", &["10"]).holds(&ctx, true));
        assert!(condition("NumericNotEquals", "n", &["9"]).holds(&ctx, true));
        assert!(condition("DateGreaterThan", "aws:CurrentTime", &["2026-01-01"]).holds(&ctx, true));
        assert!(
            !condition("DateLessThan", "aws:CurrentTime", &["2026-11-24T04:59:59Z"])
                .holds(&ctx, true)
        );
        assert!(condition("DateLessThan", "aws:CurrentTime", &["1800000000"]).holds(&ctx, true));
        assert!(condition("Bool", "aws:SecureTransport", &["true"]).holds(&ctx, true));
        assert!(condition("IpAddress", "aws:SourceIp", &["203.0.113.0/24"]).holds(&ctx, true));
        assert!(condition("NotIpAddress", "aws:SourceIp", &["10.0.0.0/8"]).holds(&ctx, true));
        assert!(condition("IpAddress", "aws:SourceIp", &["203.0.113.7"]).holds(&ctx, true));
        assert!(!condition("IpAddress", "aws:SourceIp", &["::1/128"]).holds(&ctx, true));
        assert!(
            condition("ArnLike", "aws:PrincipalArn", &["arn:aws:iam::*:user/ci/*"])
                .holds(&ctx, true)
        );
        assert!(
            condition(
                "ArnNotEquals",
                "aws:PrincipalArn",
                &["arn:aws:iam::123456789012:user/ci/other"]
            )
            .holds(&ctx, true)
        );
    }

    #[test]
    fn null_and_set_qualifiers() {
        let ctx = Context::new().with_list("aws:TagKeys", &["team", "env"]);
        assert!(condition("Null", "aws:TagKeys", &["false"]).holds(&ctx, true));
        assert!(condition("Null", "aws:RequestTag/team", &["true"]).holds(&ctx, true));
        assert!(
            condition(
                "ForAllValues:StringEquals",
                "aws:TagKeys",
                &["team", "env", "x"]
            )
            .holds(&ctx, true)
        );
        assert!(
            !condition("ForAllValues:StringEquals", "aws:TagKeys", &["team"]).holds(&ctx, true)
        );
        assert!(condition("ForAnyValue:StringEquals", "aws:TagKeys", &["team"]).holds(&ctx, true));
        assert!(!condition("ForAnyValue:StringEquals", "aws:TagKeys", &["x"]).holds(&ctx, true));
        // Absent: ForAllValues holds vacuously, ForAnyValue does not.
        let empty = Context::new();
        assert!(condition("ForAllValues:StringEquals", "aws:TagKeys", &["x"]).holds(&empty, true));
        assert!(!condition("ForAnyValue:StringEquals", "aws:TagKeys", &["x"]).holds(&empty, true));
        assert!(
            condition("ForAnyValue:StringNotEquals", "aws:TagKeys", &["team"]).holds(&ctx, true)
        );
        assert!(
            !condition("ForAllValues:StringNotEquals", "aws:TagKeys", &["team"]).holds(&ctx, true)
        );
    }

    #[test]
    fn bad_operators_and_values_are_refused() {
        assert!(Condition::new("StringEqual", "k", vec!["a".into()]).is_err());
        assert!(Condition::new("NumericEquals", "k", vec!["ten".into()]).is_err());
        assert!(Condition::new("IpAddress", "k", vec!["10.0.0.0/33".into()]).is_err());
        assert!(Condition::new("DateLessThan", "k", vec!["tomorrow".into()]).is_err());
        assert!(Condition::new("ForAnyValue:Null", "k", vec!["true".into()]).is_err());
    }
}
