//! Fits a tool's JSON Schema to the OpenAPI 3.0 subset Gemini accepts in a
//! function declaration's `parameters`.
//!
//! Gemini answers 400 to any keyword it does not know (`$schema`,
//! `additionalProperties`, `$defs`, …), and tools, MCP ones especially, use
//! them freely. Keywords are therefore kept by an allow-list, applied
//! recursively to nested schemas (`properties`, `items`, `anyOf`); a type
//! list such as `["string", "null"]` becomes `type` + `nullable`.

use serde_json::{Map, Value};

/// The schema keywords Gemini accepts.
const ALLOWED: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// Returns `schema` with only keywords Gemini accepts.
pub(super) fn clean(schema: Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(clean_object(object)),
        // A boolean or other non-object schema: "anything goes".
        _ => Value::Object(Map::new()),
    }
}

fn clean_object(object: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in object {
        if !ALLOWED.contains(&key.as_str()) {
            continue;
        }
        let value = match key.as_str() {
            "properties" => match value {
                Value::Object(properties) => Value::Object(
                    properties
                        .into_iter()
                        .map(|(name, schema)| (name, clean(schema)))
                        .collect(),
                ),
                _ => continue,
            },
            "items" => clean(value),
            "anyOf" => match value {
                Value::Array(schemas) => Value::Array(schemas.into_iter().map(clean).collect()),
                _ => continue,
            },
            "type" => match value {
                Value::Array(types) => {
                    let nullable = types.iter().any(|t| t == "null");
                    if nullable {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    match types.into_iter().find(|t| t != "null") {
                        Some(first) => first,
                        None => continue,
                    }
                }
                other => other,
            },
            _ => value,
        };
        out.insert(key, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unknown_keywords_go_recursively_and_property_names_stay() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "additionalProperties": {"type": "string", "const": "x"},
                "path": {"type": ["string", "null"], "description": "where"},
                "list": {"type": "array", "items": {"type": "object", "additionalProperties": {}, "properties": {}}},
                "choice": {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "string"}]}
            },
            "required": ["path"],
            "$defs": {"x": {}}
        });
        assert_eq!(
            clean(schema),
            json!({
                "type": "object",
                "properties": {
                    "additionalProperties": {"type": "string"},
                    "path": {"type": "string", "nullable": true, "description": "where"},
                    "list": {"type": "array", "items": {"type": "object", "properties": {}}},
                    "choice": {"anyOf": [{"type": "integer"}, {"type": "string"}]}
                },
                "required": ["path"]
            })
        );
        assert_eq!(clean(json!(true)), json!({}));
    }
}
