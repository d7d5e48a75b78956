//! Elicitation forms: fields read from the schema, answers checked.

use serde_json::json;

use super::*;

fn form(schema: Value) -> Result<Form, String> {
    let request = Elicitation {
        server: "srv".into(),
        message: "Tell me".into(),
        requested_schema_json: schema.to_string(),
    };
    Form::new("r1".into(), &request)
}

#[test]
fn each_kind_of_field_is_asked_and_checked() {
    let mut form = form(json!({
        "type": "object",
        "properties": {
            "a_name": {"type": "string", "title": "Name", "description": "yours", "minLength": 2},
            "b_age": {"type": "integer", "minimum": 1, "maximum": 150},
            "c_ok": {"type": "boolean", "default": false},
            "d_pet": {"type": "string", "enum": ["cat", "dog"], "enumNames": ["Cats", "Dogs"]},
            "e_fish": {"type": "array", "items": {"anyOf": [
                {"const": "f1", "title": "Tuna"}, {"const": "f2", "title": "Trout"}]},
                "maxItems": 1},
            "f_ratio": {"type": "number", "default": 0.5},
            "g_mail": {"type": "string", "format": "email"},
        },
        "required": ["a_name", "b_age"],
    }))
    .unwrap();
    assert_eq!(form.question(), vec!["Name* (text) yours"]);
    assert_eq!(form.submit(""), Err("a value is required".into()));
    assert_eq!(form.submit("A"), Err("at least 2 characters".into()));
    assert_eq!(form.submit(" Ada "), Ok(Some("Ada".into())));
    assert_eq!(form.question(), vec!["b_age* (integer)"]);
    assert_eq!(form.submit("1.5"), Err("a whole number".into()));
    assert_eq!(form.submit("200"), Err("at most 150".into()));
    assert_eq!(form.submit("36"), Ok(Some("36".into())));
    assert_eq!(form.question(), vec!["c_ok (y/n) [no]"]);
    assert_eq!(form.submit("maybe"), Err("answer y or n".into()));
    assert_eq!(form.submit("y"), Ok(Some("yes".into())));
    assert_eq!(
        form.question(),
        vec!["d_pet (choose a number)", "  1. Cats", "  2. Dogs"]
    );
    assert_eq!(form.submit("3"), Err("choose a number from 1 to 2".into()));
    assert_eq!(form.submit("2"), Ok(Some("Dogs".into())));
    assert_eq!(form.submit("1, 2"), Err("choose at most 1".into()));
    assert_eq!(form.submit("2"), Ok(Some("Trout".into())));
    assert_eq!(form.question(), vec!["f_ratio (number) [0.5]"]);
    assert_eq!(form.submit(""), Ok(Some("0.5".into())));
    assert_eq!(form.submit("ada"), Err("not a valid email".into()));
    assert!(!form.done());
    assert_eq!(form.submit(""), Ok(None), "optional, no default: left out");
    assert!(form.done());
    let content: Value = serde_json::from_str(&form.content()).unwrap();
    assert_eq!(
        content,
        json!({"a_name": "Ada", "b_age": 36, "c_ok": true, "d_pet": "dog",
               "e_fish": ["f2"], "f_ratio": 0.5})
    );
}

#[test]
fn titled_one_of_and_dates_are_understood() {
    let mut form = form(json!({
        "properties": {
            "hero": {"type": "string", "oneOf": [
                {"const": "h1", "title": "Superman"}, {"const": "h2", "title": "Wonder Woman"}],
                "default": "h2"},
            "when": {"type": "string", "format": "date"},
        },
    }))
    .unwrap();
    assert_eq!(form.question()[0], "hero (choose a number) [Wonder Woman]");
    assert_eq!(form.submit(""), Ok(Some("Wonder Woman".into())));
    assert_eq!(form.submit("5 May"), Err("a date as YYYY-MM-DD".into()));
    assert_eq!(form.submit("1815-12-10"), Ok(Some("1815-12-10".into())));
    let content: Value = serde_json::from_str(&form.content()).unwrap();
    assert_eq!(content, json!({"hero": "h2", "when": "1815-12-10"}));
}

#[test]
fn forms_that_cannot_be_answered_say_why() {
    assert!(form(json!("not an object")).unwrap().done());
    let bad = Elicitation {
        requested_schema_json: "{".into(),
        ..Elicitation::default()
    };
    assert!(
        Form::new("r".into(), &bad)
            .unwrap_err()
            .contains("not valid JSON")
    );
    let nested = json!({
        "properties": {"where": {"type": "object"}, "note": {"type": "object"}},
        "required": ["where"],
    });
    assert_eq!(
        form(nested).unwrap_err(),
        "its field \"where\" is of a kind not supported"
    );
    // An optional field of another kind is left out.
    let optional = form(json!({"properties": {"note": {"type": "object"}}})).unwrap();
    assert!(optional.done());
}

#[test]
fn fields_are_asked_in_the_order_the_server_wrote_them() {
    let request = Elicitation {
        requested_schema_json:
            r#"{"properties": {"zeta": {"type": "string"}, "alpha": {"type": "boolean"}}}"#.into(),
        ..Elicitation::default()
    };
    let mut form = Form::new("r".into(), &request).unwrap();
    assert_eq!(form.question(), vec!["zeta (text)"]);
    assert_eq!(form.submit("z"), Ok(Some("z".into())));
    assert_eq!(form.question(), vec!["alpha (y/n)"]);
}
