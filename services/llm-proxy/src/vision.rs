//! Images for a model that cannot see them: before an attempt, each image
//! of the conversation becomes a short note, so the model learns an image
//! was there and the provider gets no input it would refuse. Whether a
//! model sees images is `ProviderConfig::vision_for` (docs/configuration.md,
//! "Images"). Done per attempt, since a fallback may see what the first
//! choice could not.

use std::sync::Arc;

use openheim_proto::common::v1::content_block::Block;
use openheim_proto::common::v1::{ContentBlock, Image};

use crate::provider::Conversation;

/// The conversation as `model` is sent it: unchanged when it sees images
/// (or there are none), else a copy with notes in place of the images.
pub(crate) fn for_model(
    conversation: &Arc<Conversation>,
    vision: bool,
    model: &str,
) -> Arc<Conversation> {
    if vision || !has_images(conversation) {
        return Arc::clone(conversation);
    }
    let mut text_only = Conversation::clone(conversation);
    for message in &mut text_only.messages {
        for block in &mut message.content {
            match &mut block.block {
                Some(Block::Image(image)) => {
                    *block = ContentBlock {
                        block: Some(Block::Text(note(image, model))),
                    };
                }
                Some(Block::ToolResult(result)) => {
                    for image in std::mem::take(&mut result.images) {
                        if !result.content.is_empty() {
                            result.content.push('\n');
                        }
                        result.content.push_str(&note(&image, model));
                    }
                }
                _ => {}
            }
        }
    }
    Arc::new(text_only)
}

fn has_images(conversation: &Conversation) -> bool {
    conversation
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .any(|b| match &b.block {
            Some(Block::Image(_)) => true,
            Some(Block::ToolResult(result)) => !result.images.is_empty(),
            _ => false,
        })
}

/// What the model reads in place of an image.
pub(crate) fn note(image: &Image, model: &str) -> String {
    format!(
        "[An image ({}, {} bytes) was left out: model {model} does not accept images.]",
        image.mime_type,
        image.data.len()
    )
}

#[cfg(test)]
mod tests {
    use openheim_proto::common::v1::{Message, Role, ToolResult};

    use super::*;

    fn conversation() -> Arc<Conversation> {
        let image = Image {
            mime_type: "image/png".into(),
            data: vec![1, 2, 3],
        };
        let block = |b: Block| ContentBlock { block: Some(b) };
        Arc::new(Conversation {
            messages: vec![
                Message {
                    role: Role::User.into(),
                    content: vec![
                        block(Block::Text("see".into())),
                        block(Block::Image(image.clone())),
                    ],
                },
                Message {
                    role: Role::Tool.into(),
                    content: vec![block(Block::ToolResult(ToolResult {
                        tool_call_id: "c".into(),
                        content: "Image a.png".into(),
                        is_error: false,
                        images: vec![image],
                    }))],
                },
            ],
            ..Conversation::default()
        })
    }

    #[test]
    fn a_model_without_vision_reads_notes_and_one_with_vision_the_images() {
        let original = conversation();
        let same = for_model(&original, true, "big");
        assert!(Arc::ptr_eq(&same, &original));
        let text_only = for_model(&original, false, "small");
        let note =
            "[An image (image/png, 3 bytes) was left out: model small does not accept images.]";
        assert_eq!(
            text_only.messages[0].content[1].block,
            Some(Block::Text(note.into()))
        );
        let Some(Block::ToolResult(result)) = &text_only.messages[1].content[0].block else {
            panic!("{text_only:?}")
        };
        assert!(result.images.is_empty());
        assert_eq!(result.content, format!("Image a.png\n{note}"));
        assert!(!has_images(&text_only));
    }
}
