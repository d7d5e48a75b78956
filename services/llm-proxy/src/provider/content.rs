//! Helpers the request encoders of every wire format share: reading the
//! shared message types, tool schemas and arguments as borrowed raw JSON,
//! images as base64, and the first element of a JSON array without building
//! a `Vec`.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{Image, Message, ToolDefinition};
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::LlmError;

/// Schema sent for tools that declare none: an object with no properties.
pub(crate) const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// Default image type when a block does not say.
const DEFAULT_MIME: &str = "image/png";

/// The blocks of a message, skipping empty ones.
pub(crate) fn blocks(message: &Message) -> impl Iterator<Item = &Block> + Clone {
    message.content.iter().filter_map(|b| b.block.as_ref())
}

/// A tool's input schema as raw JSON, validated but not re-serialised.
/// A broken schema is a caller bug better reported here than as a 400.
pub(crate) fn tool_schema(tool: &ToolDefinition) -> Result<&RawValue, LlmError> {
    let schema = if tool.input_schema_json.trim().is_empty() {
        EMPTY_SCHEMA
    } else {
        &tool.input_schema_json
    };
    serde_json::from_str(schema).map_err(|e| LlmError::Internal {
        message: format!("tool {:?} has an invalid input schema: {e}", tool.name),
    })
}

/// Tool-call arguments as a raw JSON object. Providers that take the
/// arguments as an object (Anthropic, Gemini) reject anything else, so
/// arguments a model garbled (the tool already answered with an error) are
/// sent as `{}`.
pub(crate) fn arguments_object(arguments_json: &str) -> &RawValue {
    let empty = || {
        // A literal that always parses; the fallback only satisfies the type.
        serde_json::from_str::<&RawValue>("{}").unwrap_or(RawValue::NULL)
    };
    match serde_json::from_str::<&RawValue>(arguments_json) {
        Ok(raw) if raw.get().starts_with('{') => raw,
        _ => empty(),
    }
}

/// Arguments as a JSON string for formats that carry them as text: never
/// empty, since providers reject an empty arguments string.
pub(crate) fn arguments_text(arguments_json: &str) -> &str {
    if arguments_json.trim().is_empty() {
        "{}"
    } else {
        arguments_json
    }
}

pub(crate) fn mime_type(image: &Image) -> &str {
    if image.mime_type.is_empty() {
        DEFAULT_MIME
    } else {
        &image.mime_type
    }
}

/// The image bytes in standard base64.
pub(crate) fn base64(image: &Image) -> String {
    base64::engine::general_purpose::STANDARD.encode(&image.data)
}

/// The image as a `data:` URL (OpenAI's formats).
pub(crate) fn data_url(image: &Image) -> String {
    let mut url = format!("data:{};base64,", mime_type(image));
    base64::engine::general_purpose::STANDARD.encode_string(&image.data, &mut url);
    url
}

/// The words before the images of tool call `id` where they travel apart
/// from its result (formats whose tool results take text only).
pub(crate) fn tool_images_label(id: &str) -> String {
    format!("Images returned by tool call {id}:")
}

/// Serialises a request body.
pub(crate) fn to_json(body: &impl Serialize) -> Result<Vec<u8>, LlmError> {
    serde_json::to_vec(body).map_err(|e| LlmError::Internal {
        message: format!("cannot encode the request body: {e}"),
    })
}

/// Deserialises an array into its first element, skipping the rest, so no
/// `Vec` is built per stream chunk. `null` and `[]` give `None`.
pub(crate) fn first_element<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct First<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for First<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<T>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }

    deserializer.deserialize_option(First(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_objects_or_empty() {
        assert_eq!(arguments_object(r#"{"a":1}"#).get(), r#"{"a":1}"#);
        assert_eq!(arguments_object(r#" {"a":1} "#).get(), r#"{"a":1}"#);
        assert_eq!(arguments_object("").get(), "{}");
        assert_eq!(arguments_object(r#"{"a":"#).get(), "{}");
        assert_eq!(arguments_object("[1]").get(), "{}");
        assert_eq!(arguments_text(" "), "{}");
    }

    #[test]
    fn first_element_reads_one_and_skips_the_rest() {
        #[derive(serde::Deserialize)]
        struct Holder {
            #[serde(default, deserialize_with = "first_element")]
            items: Option<u32>,
        }
        let read = |s: &str| serde_json::from_str::<Holder>(s).map(|h| h.items).ok();
        assert_eq!(read(r#"{"items":[7,8,9]}"#), Some(Some(7)));
        assert_eq!(read(r#"{"items":[]}"#), Some(None));
        assert_eq!(read(r#"{"items":null}"#), Some(None));
        assert_eq!(read("{}"), Some(None));
    }

    #[test]
    fn images_encode() {
        let image = Image {
            mime_type: String::new(),
            data: vec![1, 2, 3],
        };
        assert_eq!(data_url(&image), "data:image/png;base64,AQID");
        assert_eq!(base64(&image), "AQID");
    }
}
