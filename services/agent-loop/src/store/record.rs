//! Stored message format and its conversion to and from the wire
//! (`common.v1.Message`). Kept separate from the proto types so that the
//! on-disk format is readable JSON and stable across wire changes.

use base64::Engine;
use openheim_proto::common::v1::{
    ContentBlock, Image, Message, Role, Thinking, ToolCall, ToolResult, content_block::Block,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum StoredMessage {
    User {
        content: Vec<StoredBlock>,
    },
    Assistant {
        content: Vec<StoredBlock>,
    },
    Tool {
        tool_call_id: String,
        content: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        /// Images the tool returned (`read_file` on an image).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        images: Vec<StoredImage>,
    },
}

/// An image as stored: its type and its bytes in base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredImage {
    pub mime_type: String,
    /// Base64.
    pub data: String,
}

impl StoredImage {
    pub fn from_wire(image: &Image) -> Self {
        Self {
            mime_type: image.mime_type.clone(),
            data: base64::engine::general_purpose::STANDARD.encode(&image.data),
        }
    }

    fn to_wire(&self) -> Image {
        Image {
            mime_type: self.mime_type.clone(),
            data: base64::engine::general_purpose::STANDARD
                .decode(&self.data)
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StoredBlock {
    Text {
        text: String,
    },
    Thinking {
        text: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        signature: String,
    },
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    Image {
        mime_type: String,
        /// Base64.
        data: String,
    },
}

impl StoredMessage {
    /// Tool calls of an assistant message.
    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        let content: &[StoredBlock] = match self {
            Self::Assistant { content } => content,
            _ => &[],
        };
        content.iter().filter_map(|b| match b {
            StoredBlock::ToolCall {
                id,
                name,
                arguments,
            } => Some((id.as_str(), name.as_str(), arguments.as_str())),
            _ => None,
        })
    }

    pub fn to_wire(&self) -> Message {
        match self {
            Self::User { content } => Message {
                role: Role::User as i32,
                content: content.iter().map(StoredBlock::to_wire).collect(),
            },
            Self::Assistant { content } => Message {
                role: Role::Assistant as i32,
                content: content.iter().map(StoredBlock::to_wire).collect(),
            },
            Self::Tool {
                tool_call_id,
                content,
                is_error,
                images,
            } => Message {
                role: Role::Tool as i32,
                content: vec![ContentBlock {
                    block: Some(Block::ToolResult(ToolResult {
                        tool_call_id: tool_call_id.clone(),
                        content: content.clone(),
                        is_error: *is_error,
                        images: images.iter().map(StoredImage::to_wire).collect(),
                    })),
                }],
            },
        }
    }

    /// Converts user prompt blocks from the wire. Blocks a user cannot send
    /// (tool calls, results, thinking) are refused, and so are images that
    /// break the image rules (`openheim_proto::image`); an image's type is
    /// taken from its bytes.
    pub fn user_from_wire(blocks: &[ContentBlock]) -> Result<Self, String> {
        let mut content = Vec::with_capacity(blocks.len());
        for b in blocks {
            match &b.block {
                Some(Block::Text(text)) => content.push(StoredBlock::Text { text: text.clone() }),
                Some(Block::Image(img)) => {
                    openheim_proto::image::check_size(img.data.len()).map_err(|e| e.to_string())?;
                    let mime = openheim_proto::image::sniff_mime(&img.data).ok_or_else(|| {
                        format!(
                            "an image declared as {:?} is {}",
                            img.mime_type,
                            openheim_proto::image::ImageError::UnknownFormat
                        )
                    })?;
                    content.push(StoredBlock::Image {
                        mime_type: mime.to_owned(),
                        data: base64::engine::general_purpose::STANDARD.encode(&img.data),
                    });
                }
                Some(_) => return Err("a prompt may only contain text and images".to_owned()),
                None => {}
            }
        }
        if content.is_empty() {
            return Err("the prompt is empty".to_owned());
        }
        Ok(Self::User { content })
    }
}

impl StoredBlock {
    fn to_wire(&self) -> ContentBlock {
        let block = match self {
            Self::Text { text } => Block::Text(text.clone()),
            Self::Thinking { text, signature } => Block::Thinking(Thinking {
                text: text.clone(),
                signature: signature.clone(),
            }),
            Self::ToolCall {
                id,
                name,
                arguments,
            } => Block::ToolCall(ToolCall {
                id: id.clone(),
                name: name.clone(),
                arguments_json: arguments.clone(),
            }),
            Self::Image { mime_type, data } => Block::Image(Image {
                mime_type: mime_type.clone(),
                data: base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .unwrap_or_default(),
            }),
        };
        ContentBlock { block: Some(block) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_format_is_readable_json() {
        let m = StoredMessage::Assistant {
            content: vec![
                StoredBlock::Text { text: "hi".into() },
                StoredBlock::ToolCall {
                    id: "c1".into(),
                    name: "read_file".into(),
                    arguments: "{\"path\":\"a\"}".into(),
                },
            ],
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"role":"assistant","content":[{"type":"text","text":"hi"},{"type":"tool_call","id":"c1","name":"read_file","arguments":"{\"path\":\"a\"}"}]}"#
        );
        let back: StoredMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn prompts_refuse_tool_blocks() {
        let blocks = vec![ContentBlock {
            block: Some(Block::ToolResult(ToolResult::default())),
        }];
        assert!(StoredMessage::user_from_wire(&blocks).is_err());
        assert!(StoredMessage::user_from_wire(&[]).is_err());
    }

    fn image_block(mime_type: &str, data: Vec<u8>) -> ContentBlock {
        ContentBlock {
            block: Some(Block::Image(Image {
                mime_type: mime_type.into(),
                data,
            })),
        }
    }

    #[test]
    fn prompt_images_take_their_type_from_their_bytes_and_keep_to_the_limit() {
        let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2];
        let stored = StoredMessage::user_from_wire(&[image_block("image/png", jpeg)]).unwrap();
        let StoredMessage::User { content } = &stored else {
            panic!("{stored:?}")
        };
        assert!(
            matches!(&content[0], StoredBlock::Image { mime_type, .. } if mime_type == "image/jpeg")
        );

        let err = StoredMessage::user_from_wire(&[image_block("image/png", b"<svg/>".to_vec())])
            .unwrap_err();
        assert!(err.contains("not a PNG, JPEG, GIF or WebP"), "{err}");
        let mut big = b"GIF89a".to_vec();
        big.resize(openheim_proto::image::MAX_IMAGE_BYTES + 1, 0);
        let err = StoredMessage::user_from_wire(&[image_block("image/gif", big)]).unwrap_err();
        assert!(err.starts_with("the image is 5.0 MB"), "{err}");
    }

    #[test]
    fn tool_results_keep_their_images() {
        let message = StoredMessage::Tool {
            tool_call_id: "c1".into(),
            content: "Image a.png".into(),
            is_error: false,
            images: vec![StoredImage {
                mime_type: "image/png".into(),
                data: "AQID".into(),
            }],
        };
        let json = serde_json::to_string(&message).unwrap();
        assert_eq!(
            json,
            r#"{"role":"tool","tool_call_id":"c1","content":"Image a.png","images":[{"mime_type":"image/png","data":"AQID"}]}"#
        );
        let wire = message.to_wire();
        let Some(Block::ToolResult(result)) = &wire.content[0].block else {
            panic!("{wire:?}")
        };
        assert_eq!(result.images[0].data, vec![1, 2, 3]);
    }
}
