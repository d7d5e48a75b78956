//! An MCP server's elicitation request (docs/mcp.md, "Elicitation") as a
//! form asked one field at a time: the fields of the requested schema
//! (string, number, integer, boolean, enum, multi-select enum), each with
//! its default and whether it is required; a typed value is checked against
//! the field and re-asked with the reason when it does not fit. Pure: the
//! machine (`machine.rs`) shows its prompts and feeds it lines.

use openheim_proto::common::v1::Elicitation;
use serde_json::{Map, Number, Value};

/// What a field takes.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Text {
        min: Option<u64>,
        max: Option<u64>,
        format: Option<String>,
    },
    Number {
        integer: bool,
        min: Option<f64>,
        max: Option<f64>,
    },
    Boolean,
    /// One of these `(value, label)`s, chosen by number.
    Choice(Vec<(String, String)>),
    /// Some of them, chosen by numbers separated by commas or spaces.
    Choices {
        options: Vec<(String, String)>,
        min: Option<u64>,
        max: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: String,
    label: String,
    description: String,
    kind: Kind,
    required: bool,
    default: Option<Value>,
}

/// One elicitation request being answered.
#[derive(Debug)]
pub(super) struct Form {
    pub(super) request_id: String,
    pub(super) server: String,
    pub(super) message: String,
    fields: Vec<Field>,
    next: usize,
    content: Map<String, Value>,
}

impl Form {
    /// The form of `request`; `Err` says why it cannot be answered here
    /// (an unreadable schema, a required field of a kind not supported).
    /// Optional fields of other kinds are left out.
    pub(super) fn new(request_id: String, request: &Elicitation) -> Result<Self, String> {
        let schema: Value = serde_json::from_str(&request.requested_schema_json)
            .map_err(|e| format!("its form is not valid JSON ({e})"))?;
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        for (name, property) in properties(&request.requested_schema_json) {
            let required = required.contains(&name.as_str());
            match kind(&property) {
                Some(kind) => fields.push(field(&name, &property, kind, required)),
                None if required => {
                    return Err(format!("its field {name:?} is of a kind not supported"));
                }
                None => {}
            }
        }
        Ok(Self {
            request_id,
            server: request.server.clone(),
            message: request.message.clone(),
            fields,
            next: 0,
            content: Map::new(),
        })
    }

    /// Every field has been answered.
    pub(super) fn done(&self) -> bool {
        self.next >= self.fields.len()
    }

    /// The question for the current field: `label* (kind) description
    /// [default]`, then its numbered options, one per line.
    pub(super) fn question(&self) -> Vec<String> {
        let Some(field) = self.fields.get(self.next) else {
            return Vec::new();
        };
        let mut line = field.label.clone();
        if field.required {
            line.push('*');
        }
        line.push_str(&format!(" ({})", kind_name(&field.kind)));
        if !field.description.is_empty() {
            line.push_str(&format!(" {}", field.description));
        }
        if let Some(default) = &field.default {
            line.push_str(&format!(" [{}]", shown(&field.kind, default)));
        }
        let mut lines = vec![line];
        if let Kind::Choice(options) | Kind::Choices { options, .. } = &field.kind {
            for (i, (_, label)) in options.iter().enumerate() {
                lines.push(format!("  {}. {label}", i + 1));
            }
        }
        lines
    }

    /// Takes the typed answer to the current field: `Ok` with the answer as
    /// shown back (`None`: left out), or `Err` with why it does not fit (the
    /// field is asked again).
    pub(super) fn submit(&mut self, line: &str) -> Result<Option<String>, String> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        let value = value(field, line.trim())?;
        self.next += 1;
        Ok(value.map(|value| {
            let said = shown(&field.kind, &value);
            self.content.insert(field.name.clone(), value);
            said
        }))
    }

    /// The label of the current field.
    pub(super) fn label(&self) -> &str {
        self.fields.get(self.next).map_or("", |f| f.label.as_str())
    }

    /// The answers, as the JSON object sent back.
    pub(super) fn content(&self) -> String {
        Value::Object(self.content.clone()).to_string()
    }
}

/// The schema's properties in the order the server wrote them (a JSON
/// object's order is lost in a `serde_json::Map`).
fn properties(schema_json: &str) -> Vec<(String, Value)> {
    #[derive(serde::Deserialize)]
    struct Schema {
        #[serde(default)]
        properties: Ordered,
    }
    #[derive(Default)]
    struct Ordered(Vec<(String, Value)>);
    impl<'de> serde::Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object of properties")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Ordered, A::Error> {
                    let mut properties = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        properties.push(entry);
                    }
                    Ok(Ordered(properties))
                }
            }
            d.deserialize_map(Visitor)
        }
    }
    serde_json::from_str::<Schema>(schema_json)
        .map(|schema| schema.properties.0)
        .unwrap_or_default()
}

fn field(name: &str, property: &Value, kind: Kind, required: bool) -> Field {
    let text = |key: &str| property[key].as_str().unwrap_or_default().to_owned();
    let title = text("title");
    Field {
        name: name.to_owned(),
        label: if title.is_empty() {
            name.to_owned()
        } else {
            title
        },
        description: text("description"),
        kind,
        required,
        default: property.get("default").cloned(),
    }
}

fn kind(property: &Value) -> Option<Kind> {
    let bound = |key: &str| property[key].as_u64();
    if let Some(options) = options(property) {
        return Some(Kind::Choice(options));
    }
    match property["type"].as_str()? {
        "string" => Some(Kind::Text {
            min: bound("minLength"),
            max: bound("maxLength"),
            format: property["format"].as_str().map(str::to_owned),
        }),
        kind @ ("number" | "integer") => Some(Kind::Number {
            integer: kind == "integer",
            min: property["minimum"].as_f64(),
            max: property["maximum"].as_f64(),
        }),
        "boolean" => Some(Kind::Boolean),
        "array" => Some(Kind::Choices {
            options: options(&property["items"])?,
            min: bound("minItems"),
            max: bound("maxItems"),
        }),
        _ => None,
    }
}

/// The `(value, label)` options of an enum: `enum` (with the legacy
/// `enumNames`), or `oneOf` / `anyOf` of `{const, title}`.
fn options(schema: &Value) -> Option<Vec<(String, String)>> {
    if let Some(values) = schema["enum"].as_array() {
        let names = schema["enumNames"].as_array();
        let options = values.iter().enumerate().filter_map(|(i, v)| {
            let value = v.as_str()?.to_owned();
            let label = names
                .and_then(|n| n.get(i))
                .and_then(Value::as_str)
                .map_or_else(|| value.clone(), str::to_owned);
            Some((value, label))
        });
        return Some(options.collect());
    }
    let listed = schema["oneOf"]
        .as_array()
        .or_else(|| schema["anyOf"].as_array())?;
    let options = listed.iter().filter_map(|option| {
        let value = option["const"].as_str()?.to_owned();
        let label = option["title"].as_str().unwrap_or(&value).to_owned();
        Some((value, label))
    });
    Some(options.collect())
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Text {
            format: Some(format),
            ..
        } => format!("text, {format}"),
        Kind::Text { .. } => "text".to_owned(),
        Kind::Number { integer: true, .. } => "integer".to_owned(),
        Kind::Number { .. } => "number".to_owned(),
        Kind::Boolean => "y/n".to_owned(),
        Kind::Choice(_) => "choose a number".to_owned(),
        Kind::Choices { .. } => "choose numbers, separated by commas".to_owned(),
    }
}

/// A value as the user reads it: labels for options, y/n for booleans.
fn shown(kind: &Kind, value: &Value) -> String {
    let label = |options: &[(String, String)], v: &Value| {
        let v = v.as_str().unwrap_or_default();
        options
            .iter()
            .find(|(value, _)| value == v)
            .map_or_else(|| v.to_owned(), |(_, label)| label.clone())
    };
    match (kind, value) {
        (Kind::Boolean, Value::Bool(true)) => "yes".to_owned(),
        (Kind::Boolean, Value::Bool(false)) => "no".to_owned(),
        (Kind::Choice(options), v) => label(options, v),
        (Kind::Choices { options, .. }, Value::Array(values)) => values
            .iter()
            .map(|v| label(options, v))
            .collect::<Vec<_>>()
            .join(", "),
        (_, Value::String(s)) => s.clone(),
        (_, v) => v.to_string(),
    }
}

/// The value of a typed answer; `None`: left out.
fn value(field: &Field, typed: &str) -> Result<Option<Value>, String> {
    if typed.is_empty() {
        return match (&field.default, field.required) {
            (Some(default), _) => Ok(Some(default.clone())),
            (None, true) => Err("a value is required".to_owned()),
            (None, false) => Ok(None),
        };
    }
    let value = match &field.kind {
        Kind::Text { min, max, format } => text(typed, *min, *max, format.as_deref())?,
        Kind::Number { integer, min, max } => number(typed, *integer, *min, *max)?,
        Kind::Boolean => match typed.to_lowercase().as_str() {
            "y" | "yes" | "true" => Value::Bool(true),
            "n" | "no" | "false" => Value::Bool(false),
            _ => return Err("answer y or n".to_owned()),
        },
        Kind::Choice(options) => Value::String(choose(typed, options)?),
        Kind::Choices { options, min, max } => choices(typed, options, *min, *max)?,
    };
    Ok(Some(value))
}

fn text(
    typed: &str,
    min: Option<u64>,
    max: Option<u64>,
    format: Option<&str>,
) -> Result<Value, String> {
    let length = typed.chars().count() as u64;
    if let Some(min) = min.filter(|min| length < *min) {
        return Err(format!("at least {min} characters"));
    }
    if let Some(max) = max.filter(|max| length > *max) {
        return Err(format!("at most {max} characters"));
    }
    let fits = match format {
        Some("email") => typed
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.')),
        Some("uri") => typed
            .split_once("://")
            .is_some_and(|(s, rest)| !s.is_empty() && !rest.is_empty()),
        Some("date") => is_date(typed),
        _ => true,
    };
    match (fits, format) {
        (false, Some("date")) => Err("a date as YYYY-MM-DD".to_owned()),
        (false, Some(format)) => Err(format!("not a valid {format}")),
        _ => Ok(Value::String(typed.to_owned())),
    }
}

fn is_date(typed: &str) -> bool {
    let parts: Vec<&str> = typed.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    matches!(parts.as_slice(), [y, m, d] if digits(y, 4) && digits(m, 2) && digits(d, 2))
}

fn number(typed: &str, integer: bool, min: Option<f64>, max: Option<f64>) -> Result<Value, String> {
    let (value, number) = if integer {
        let n: i64 = typed.parse().map_err(|_| "a whole number".to_owned())?;
        (n as f64, Number::from(n))
    } else {
        let n: f64 = typed.parse().map_err(|_| "a number".to_owned())?;
        let number = Number::from_f64(n).ok_or_else(|| "a finite number".to_owned())?;
        (n, number)
    };
    if let Some(min) = min.filter(|min| value < *min) {
        return Err(format!("at least {min}"));
    }
    if let Some(max) = max.filter(|max| value > *max) {
        return Err(format!("at most {max}"));
    }
    Ok(Value::Number(number))
}

fn choose(typed: &str, options: &[(String, String)]) -> Result<String, String> {
    let n: usize = typed.parse().unwrap_or(0);
    match n.checked_sub(1).and_then(|i| options.get(i)) {
        Some((value, _)) => Ok(value.clone()),
        None => Err(format!("choose a number from 1 to {}", options.len())),
    }
}

fn choices(
    typed: &str,
    options: &[(String, String)],
    min: Option<u64>,
    max: Option<u64>,
) -> Result<Value, String> {
    let chosen = typed
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| choose(s, options).map(Value::String))
        .collect::<Result<Vec<_>, _>>()?;
    let count = chosen.len() as u64;
    if let Some(min) = min.filter(|min| count < *min) {
        return Err(format!("choose at least {min}"));
    }
    if let Some(max) = max.filter(|max| count > *max) {
        return Err(format!("choose at most {max}"));
    }
    Ok(Value::Array(chosen))
}

#[cfg(test)]
#[path = "elicit_tests.rs"]
mod tests;
