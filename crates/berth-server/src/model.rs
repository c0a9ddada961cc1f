//! botocore's models of the APIs berth speaks (`models/*.json`, regenerated
//! by `scripts/gen-models.py`): which operations exist, the constraints every
//! input member must meet (checked on the server as AWS does), and for the
//! Query protocol (IAM, STS) how form parameters decode and results encode
//! as XML.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub struct Operation {
    /// The error shapes the operation declares.
    #[serde(default)]
    pub errors: Vec<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    #[serde(rename = "resultWrapper")]
    pub result_wrapper: Option<String>,
}

#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "type")]
    kind: String,
    /// An error the service is at fault for (5xx).
    #[serde(default)]
    fault: bool,
    #[serde(default)]
    required: Vec<String>,
    min: Option<f64>,
    max: Option<f64>,
    pattern: Option<String>,
    #[serde(rename = "enum")]
    values: Option<Vec<String>>,
    #[serde(default)]
    members: HashMap<String, String>,
    /// Member names in the model's order (XML output follows it).
    #[serde(default)]
    order: Vec<String>,
    member: Option<String>,
    error: Option<ErrorTrait>,
    key: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
struct ErrorTrait {
    code: Option<String>,
    #[serde(rename = "httpStatusCode")]
    status: Option<u16>,
}

#[derive(Deserialize)]
struct Raw {
    metadata: HashMap<String, String>,
    operations: HashMap<String, Operation>,
    shapes: HashMap<String, Shape>,
}

pub struct Model {
    raw: Raw,
    /// Patterns compiled once, anchored: AWS matches the whole value.
    patterns: HashMap<String, Regex>,
}

pub static ECR: LazyLock<Model> = LazyLock::new(|| Model::load(include_str!("models/ecr.json")));
pub static IAM: LazyLock<Model> = LazyLock::new(|| Model::load(include_str!("models/iam.json")));
pub static STS: LazyLock<Model> = LazyLock::new(|| Model::load(include_str!("models/sts.json")));
pub static SECRETS: LazyLock<Model> =
    LazyLock::new(|| Model::load(include_str!("models/secretsmanager.json")));

/// How input failed the model, as AWS words it.
#[derive(Debug, PartialEq, Eq)]
pub enum InputError {
    /// `SerializationException`: the JSON does not have the shape's types.
    Serialization(String),
    /// `ValidationException`: values break min/max/pattern/enum/required.
    Validation(String),
}

/// Rewrites the Perl classes of a botocore pattern (`\\w`, `\\d`, `\\s`
/// and their negations) to their ASCII meaning, as AWS matches them (Java's
/// regular expressions); the `regex` crate's are Unicode. Explicit Unicode
/// classes (`\\p{L}` …) stay Unicode.
fn ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(c);
                    break;
                };
                let (inside, outside) = match next {
                    'w' => ("[:word:]", "[[:word:]]"),
                    'W' => ("[:^word:]", "[^[:word:]]"),
                    'd' => ("[:digit:]", "[[:digit:]]"),
                    'D' => ("[:^digit:]", "[^[:digit:]]"),
                    's' => ("[:space:]", "[[:space:]]"),
                    'S' => ("[:^space:]", "[^[:space:]]"),
                    _ => {
                        out.push(c);
                        out.push(next);
                        continue;
                    }
                };
                out.push_str(if in_class { inside } else { outside });
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` or `^]` right after the opening bracket is literal.
                let rest = chars.as_str();
                for lead in ["^]", "]", "^"] {
                    if let Some(after) = rest.strip_prefix(lead) {
                        out.push_str(lead);
                        chars = after.chars();
                        break;
                    }
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

impl Model {
    fn load(json: &str) -> Model {
        let raw: Raw = serde_json::from_str(json).expect("the model parses");
        let patterns = raw
            .shapes
            .values()
            .filter_map(|s| s.pattern.clone())
            .filter_map(|p| {
                let anchored = format!(
                    "^(?:{})$",
                    ascii_classes(p.trim_start_matches('^').trim_end_matches('$'))
                );
                // A few IAM patterns use look-ahead, which `regex` lacks; those
                // members go unchecked (none belongs to an operation berth serves).
                let regex = Regex::new(&anchored).ok()?;
                Some((p, regex))
            })
            .collect();
        Model { raw, patterns }
    }

    /// The XML namespace of a Query API's responses.
    pub fn xml_namespace(&self) -> &str {
        self.raw
            .metadata
            .get("xmlNamespace")
            .map_or("", String::as_str)
    }

    /// The HTTP status the model gives error `code`: its `httpStatusCode`,
    /// 500 for a fault, else 400.
    pub fn error_status(&self, code: &str) -> u16 {
        if let Some(shape) = self.raw.shapes.get(code) {
            if let Some(status) = shape.error.as_ref().and_then(|e| e.status) {
                return status;
            }
            if shape.fault {
                return 500;
            }
        }
        self.raw
            .shapes
            .values()
            .filter_map(|s| s.error.as_ref())
            .find(|e| e.code.as_deref() == Some(code))
            .and_then(|e| e.status)
            .unwrap_or(400)
    }

    /// Whether `operation` may answer error `code`: one it declares, or one
    /// every AWS API may answer (authentication, throttling, validation).
    pub fn declares_error(&self, operation: &str, code: &str) -> bool {
        const COMMON: &[&str] = &[
            "AccessDeniedException",
            "ExpiredTokenException",
            "IncompleteSignatureException",
            "InvalidSignatureException",
            "MissingAuthenticationTokenException",
            "SerializationException",
            "ThrottlingException",
            "UnknownOperationException",
            "UnrecognizedClientException",
            "ValidationException",
            // berth's own answer for an operation it does not support yet
            // (README, "Status"); no AWS model declares it.
            "UnsupportedOperationException",
        ];
        COMMON.contains(&code)
            || self
                .operation(operation)
                .is_some_and(|op| op.errors.iter().any(|e| e == code))
    }

    /// The API version (`Version=` of the Query protocol).
    pub fn api_version(&self) -> &str {
        self.raw
            .metadata
            .get("apiVersion")
            .map_or("", String::as_str)
    }

    pub fn target_prefix(&self) -> &str {
        &self.raw.metadata["targetPrefix"]
    }

    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.raw.operations.get(name)
    }

    /// Checks `input` against the operation's input shape.
    pub fn validate(&self, operation: &Operation, input: &Value) -> Result<(), InputError> {
        let Some(shape) = &operation.input else {
            return Ok(());
        };
        let mut problems = Vec::new();
        self.check(shape, input, "", &mut problems)?;
        match problems.len() {
            0 => Ok(()),
            1 => Err(InputError::Validation(format!(
                "1 validation error detected: {}",
                problems[0]
            ))),
            n => Err(InputError::Validation(format!(
                "{n} validation errors detected: {}",
                problems.join("; ")
            ))),
        }
    }

    fn check(
        &self,
        shape_name: &str,
        value: &Value,
        path: &str,
        problems: &mut Vec<String>,
    ) -> Result<(), InputError> {
        let shape = &self.raw.shapes[shape_name];
        let wrong_type = || {
            InputError::Serialization(format!(
                "Unexpected value type at '{}': expected {}",
                if path.is_empty() { "input" } else { path },
                shape.kind
            ))
        };
        let at = |member: &str| {
            // Query APIs name members in lower camel case in their messages.
            let member = match self.raw.metadata.get("protocol").map(String::as_str) {
                Some("query") => {
                    let mut chars = member.chars();
                    chars.next().map_or(String::new(), |first| {
                        first.to_lowercase().chain(chars).collect()
                    })
                }
                _ => member.to_string(),
            };
            if path.is_empty() {
                member
            } else {
                format!("{path}.{member}")
            }
        };
        let shown = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match shape.kind.as_str() {
            "structure" => {
                let object = value.as_object().ok_or_else(wrong_type)?;
                for required in &shape.required {
                    if object.get(required).is_none_or(Value::is_null) {
                        problems.push(format!(
                            "Value null at '{}' failed to satisfy constraint: Member must not be null",
                            at(required)
                        ));
                    }
                }
                for (name, member_value) in object {
                    // Unknown members are ignored, as AWS's JSON protocol does.
                    if let Some(member_shape) = shape.members.get(name)
                        && !member_value.is_null()
                    {
                        self.check(member_shape, member_value, &at(name), problems)?;
                    }
                }
            }
            "list" => {
                let items = value.as_array().ok_or_else(wrong_type)?;
                self.bounds(
                    shape,
                    items.len() as f64,
                    "length",
                    &shown(value),
                    path,
                    problems,
                );
                let member = shape.member.as_deref().expect("lists have a member");
                for (i, item) in items.iter().enumerate() {
                    self.check(
                        member,
                        item,
                        &format!("{}.{}.member", path, i + 1),
                        problems,
                    )?;
                }
            }
            "map" => {
                let entries = value.as_object().ok_or_else(wrong_type)?;
                self.bounds(
                    shape,
                    entries.len() as f64,
                    "length",
                    &shown(value),
                    path,
                    problems,
                );
                let (key, val) = (
                    shape.key.as_deref().expect("maps have keys"),
                    shape.value.as_deref().expect("and values"),
                );
                for (k, v) in entries {
                    self.check(key, &Value::String(k.clone()), path, problems)?;
                    self.check(val, v, &format!("{path}.{k}"), problems)?;
                }
            }
            "string" => {
                let s = value.as_str().ok_or_else(wrong_type)?;
                self.bounds(shape, s.chars().count() as f64, "length", s, path, problems);
                if let Some(values) = &shape.values
                    && !values.iter().any(|v| v == s)
                {
                    problems.push(format!(
                        "Value '{s}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                        values.join(", ")
                    ));
                }
                if let Some(pattern) = &shape.pattern
                    && self.patterns.get(pattern).is_some_and(|r| !r.is_match(s))
                {
                    problems.push(format!(
                        "Value '{s}' at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"
                    ));
                }
            }
            "integer" | "long" => {
                let n = value.as_i64().ok_or_else(wrong_type)?;
                self.bounds(shape, n as f64, "value", &n.to_string(), path, problems);
            }
            "boolean" => {
                value.as_bool().ok_or_else(wrong_type)?;
            }
            "timestamp" | "double" | "float" => {
                value.as_f64().ok_or_else(wrong_type)?;
            }
            "blob" => {
                let s = value.as_str().ok_or_else(wrong_type)?;
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).map_err(
                    |_| InputError::Serialization(format!("'{path}' is not valid base64")),
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Decodes Query-protocol form parameters (`Tags.member.1.Key=…`) into
    /// the JSON shape of the operation's input, so it validates like JSON.
    pub fn decode_query(
        &self,
        operation: &Operation,
        params: &HashMap<String, String>,
    ) -> Result<Value, InputError> {
        match &operation.input {
            None => Ok(Value::Object(Default::default())),
            Some(shape) => Ok(self
                .decode(shape, "", params)?
                .unwrap_or_else(|| Value::Object(Default::default()))),
        }
    }

    fn decode(
        &self,
        shape_name: &str,
        key: &str,
        params: &HashMap<String, String>,
    ) -> Result<Option<Value>, InputError> {
        let shape = &self.raw.shapes[shape_name];
        let join = |member: &str| {
            if key.is_empty() {
                member.to_string()
            } else {
                format!("{key}.{member}")
            }
        };
        let scalar = params.get(key);
        let invalid = |what: &str| {
            InputError::Validation(format!(
                "1 validation error detected: Value '{}' at '{key}' failed to satisfy constraint: Member must be {what}",
                scalar.map_or("", String::as_str)
            ))
        };
        Ok(match shape.kind.as_str() {
            "structure" => {
                let mut object = serde_json::Map::new();
                for member in &shape.order {
                    if let Some(value) =
                        self.decode(&shape.members[member], &join(member), params)?
                    {
                        object.insert(member.clone(), value);
                    }
                }
                (key.is_empty() || !object.is_empty()).then_some(Value::Object(object))
            }
            "list" => {
                let member = shape.member.as_deref().expect("lists have a member");
                let mut items = Vec::new();
                while let Some(item) = self.decode(
                    member,
                    &join(&format!("member.{}", items.len() + 1)),
                    params,
                )? {
                    items.push(item);
                }
                // `Name=` with no members is an empty list.
                (!items.is_empty() || scalar.is_some()).then_some(Value::Array(items))
            }
            "map" => {
                let (k, v) = (
                    shape.key.as_deref().expect("maps have keys"),
                    shape.value.as_deref().expect("and values"),
                );
                let mut object = serde_json::Map::new();
                for i in 1.. {
                    let entry = join(&format!("entry.{i}"));
                    let Some(Value::String(name)) =
                        self.decode(k, &format!("{entry}.key"), params)?
                    else {
                        break;
                    };
                    let value = self
                        .decode(v, &format!("{entry}.value"), params)?
                        .unwrap_or(Value::Null);
                    object.insert(name, value);
                }
                (!object.is_empty()).then_some(Value::Object(object))
            }
            "integer" | "long" => match scalar {
                None => None,
                Some(text) => Some(Value::from(
                    text.parse::<i64>().map_err(|_| invalid("a number"))?,
                )),
            },
            "boolean" => match scalar.map(String::as_str) {
                None => None,
                Some("true") => Some(Value::Bool(true)),
                Some("false") => Some(Value::Bool(false)),
                Some(_) => return Err(invalid("true or false")),
            },
            "timestamp" => scalar.map(|text| {
                humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or_else(|| Value::String(text.clone()), |d| Value::from(d.as_secs()))
            }),
            _ => scalar.map(|text| Value::String(text.clone())),
        })
    }

    /// The XML body of a successful Query-protocol response: the output's
    /// members in the model's order inside `<{Operation}Result>`, with
    /// timestamps in ISO 8601 and lists as `<member>` elements.
    pub fn encode_query_response(
        &self,
        name: &str,
        operation: &Operation,
        output: &Value,
        request_id: &str,
    ) -> String {
        let mut xml = format!("<{name}Response xmlns=\"{}\">", self.xml_namespace());
        if let (Some(shape), Some(wrapper)) = (&operation.output, &operation.result_wrapper) {
            self.encode(shape, wrapper, output, &mut xml);
        }
        xml.push_str(&format!(
            "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{name}Response>"
        ));
        xml
    }

    fn encode(&self, shape_name: &str, element: &str, value: &Value, xml: &mut String) {
        if value.is_null() {
            return;
        }
        let shape = &self.raw.shapes[shape_name];
        xml.push_str(&format!("<{element}>"));
        match shape.kind.as_str() {
            "structure" => {
                for member in &shape.order {
                    if let Some(v) = value.get(member) {
                        self.encode(&shape.members[member], member, v, xml);
                    }
                }
            }
            "list" => {
                let member = shape.member.as_deref().expect("lists have a member");
                for item in value.as_array().into_iter().flatten() {
                    self.encode(member, "member", item, xml);
                }
            }
            "map" => {
                let (k, v) = (
                    shape.key.as_deref().expect("maps have keys"),
                    shape.value.as_deref().expect("and values"),
                );
                for (key, item) in value.as_object().into_iter().flatten() {
                    xml.push_str("<entry>");
                    self.encode(k, "key", &Value::String(key.clone()), xml);
                    self.encode(v, "value", item, xml);
                    xml.push_str("</entry>");
                }
            }
            "timestamp" => {
                let seconds = value.as_f64().unwrap_or_default().max(0.0) as u64;
                let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
                xml.push_str(&humantime::format_rfc3339_seconds(time).to_string());
            }
            _ => match value {
                Value::String(s) => xml.push_str(&xml_escape(s)),
                other => xml.push_str(&other.to_string()),
            },
        }
        xml.push_str(&format!("</{element}>"));
    }

    fn bounds(
        &self,
        shape: &Shape,
        measure: f64,
        what: &str,
        shown: &str,
        path: &str,
        problems: &mut Vec<String>,
    ) {
        if let Some(min) = shape.min
            && measure < min
        {
            problems.push(format!(
                "Value '{shown}' at '{path}' failed to satisfy constraint: Member must have {what} greater than or equal to {min}"
            ));
        }
        if let Some(max) = shape.max
            && measure > max
        {
            problems.push(format!(
                "Value '{shown}' at '{path}' failed to satisfy constraint: Member must have {what} less than or equal to {max}"
            ));
        }
    }
}

/// Text as XML character data.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validate(op: &str, input: Value) -> Result<(), InputError> {
        ECR.validate(ECR.operation(op).unwrap(), &input)
    }

    #[test]
    fn every_pattern_compiles_and_every_operation_is_there() {
        assert_eq!(ECR.raw.operations.len(), 62);
        assert_eq!(ECR.target_prefix(), "AmazonEC2ContainerRegistry_V20150921");
        assert!(!ECR.patterns.is_empty());
        assert_eq!(IAM.raw.operations.len(), 180);
        assert!(!IAM.patterns.is_empty());
        assert_eq!(
            STS.xml_namespace(),
            "https://sts.amazonaws.com/doc/2011-06-15/"
        );
        assert_eq!(IAM.error_status("NoSuchEntity"), 404);
    }

    #[test]
    fn constraints_as_aws_words_them() {
        assert_eq!(
            validate("CreateRepository", json!({"repositoryName": "team/app"})),
            Ok(())
        );
        let Err(InputError::Validation(m)) = validate("CreateRepository", json!({})) else {
            panic!()
        };
        assert_eq!(
            m,
            "1 validation error detected: Value null at 'repositoryName' failed to satisfy constraint: Member must not be null"
        );
        let Err(InputError::Validation(m)) =
            validate("CreateRepository", json!({"repositoryName": "A"}))
        else {
            panic!()
        };
        assert!(m.starts_with("2 validation errors detected: "), "{m}");
        assert!(m.contains("greater than or equal to 2"), "{m}");
        assert!(m.contains("regular expression pattern"), "{m}");
        let Err(InputError::Validation(m)) = validate(
            "CreateRepository",
            json!({"repositoryName": "ok", "imageTagMutability": "SOMETIMES"}),
        ) else {
            panic!()
        };
        assert!(m.contains("enum value set: [MUTABLE, IMMUTABLE"), "{m}");
        let Err(InputError::Validation(m)) =
            validate("DescribeRepositories", json!({"maxResults": 1001}))
        else {
            panic!()
        };
        assert!(m.contains("value less than or equal to 1000"), "{m}");
        assert!(matches!(
            validate("DescribeRepositories", json!({"maxResults": "ten"})),
            Err(InputError::Serialization(_))
        ));
        assert!(matches!(
            validate("DescribeRepositories", json!({"repositoryNames": "x"})),
            Err(InputError::Serialization(_))
        ));
        let Err(InputError::Validation(m)) = validate(
            "DescribeRepositories",
            json!({"repositoryNames": ["ok", "B"]}),
        ) else {
            panic!()
        };
        assert!(m.contains("'repositoryNames.2.member'"), "{m}");
    }

    #[test]
    fn query_parameters_decode_to_the_input_shape() {
        let params: HashMap<String, String> = [
            ("UserName", "bob"),
            ("Path", "/ci/"),
            ("Tags.member.1.Key", "team"),
            ("Tags.member.1.Value", "web"),
            ("Tags.member.2.Key", "env"),
            ("Tags.member.2.Value", "prod"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let input = IAM
            .decode_query(IAM.operation("CreateUser").unwrap(), &params)
            .unwrap();
        assert_eq!(
            input,
            json!({"UserName": "bob", "Path": "/ci/", "Tags": [
                {"Key": "team", "Value": "web"}, {"Key": "env", "Value": "prod"}]})
        );
        let bad: HashMap<String, String> = [("MaxItems".to_string(), "ten".to_string())].into();
        assert!(
            IAM.decode_query(IAM.operation("ListUsers").unwrap(), &bad)
                .is_err()
        );
    }

    #[test]
    fn results_encode_as_query_xml() {
        let output = json!({"User": {"UserName": "a&b", "Path": "/", "UserId": "AIDA1",
            "Arn": "arn:aws:iam::123456789012:user/a&b", "CreateDate": 1795478400,
            "Tags": [{"Key": "k", "Value": "v"}]}});
        let xml = IAM.encode_query_response(
            "CreateUser",
            IAM.operation("CreateUser").unwrap(),
            &output,
            "rid",
        );
        assert_eq!(
            xml,
            "<CreateUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><CreateUserResult><User>\
             <Path>/</Path><UserName>a&amp;b</UserName><UserId>AIDA1</UserId>\
             <Arn>arn:aws:iam::123456789012:user/a&amp;b</Arn><CreateDate>2026-11-24T00:00:00Z</CreateDate>\
             <Tags><member><Key>k</Key><Value>v</Value></member></Tags></User></CreateUserResult>\
             <ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></CreateUserResponse>"
        );
    }

    /// botocore's `\\w` means ASCII, as on AWS: `usér` is not a user name.
    #[test]
    fn perl_classes_are_ascii_and_unicode_classes_stay() {
        assert_eq!(ascii_classes(r"[\w+=,.@-]+"), "[[:word:]+=,.@-]+");
        assert_eq!(ascii_classes(r"\d{12}"), "[[:digit:]]{12}");
        assert_eq!(ascii_classes(r"^\S+$"), "^[^[:space:]]+$");
        assert_eq!(ascii_classes(r"[\p{L}\p{Z}]+"), r"[\p{L}\p{Z}]+");
        assert_eq!(ascii_classes(r"[]\w]"), "[][:word:]]");
        let create = |name: &str| {
            IAM.validate(
                IAM.operation("CreateUser").unwrap(),
                &json!({"UserName": name}),
            )
        };
        assert!(create("deployer+ci@team").is_ok());
        assert!(matches!(create("usér"), Err(InputError::Validation(_))));
        assert!(matches!(create("用户"), Err(InputError::Validation(_))));
        // ECR tag values are Unicode letters by the model's own classes.
        assert!(
            validate(
                "TagResource",
                json!({"resourceArn": "arn:aws:ecr:us-east-1:123456789012:repository/a",
                    "tags": [{"Key": "équipe", "Value": "données"}]})
            )
            .is_ok()
        );
    }

    #[test]
    fn error_statuses_come_from_the_model() {
        assert_eq!(ECR.error_status("ServerException"), 500);
        assert_eq!(ECR.error_status("RepositoryNotFoundException"), 400);
        assert!(ECR.declares_error("CreateRepository", "RepositoryAlreadyExistsException"));
        assert!(ECR.declares_error("CreateRepository", "AccessDeniedException"));
        assert!(!ECR.declares_error("DescribeRepositories", "ImageNotFoundException"));
    }
}
