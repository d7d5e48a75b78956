//! `web_fetch`: fetches a public http(s) page and returns its text, through
//! the guarded client in [`crate::web`].

use openheim_proto::common::v1::{ToolDefinition, ToolKind};
use serde::Deserialize;

use super::{ToolContext, ToolHandler, ToolOutput, builtin_definition, parse_args};
use crate::error::ToolError;
use crate::web::MAX_BODY_BYTES;

const NAME: &str = "web_fetch";

#[derive(Debug, Deserialize)]
struct Args {
    url: String,
}

/// The built-in web page fetcher.
pub(crate) struct WebFetch;

#[async_trait::async_trait]
impl ToolHandler for WebFetch {
    fn definition(&self) -> ToolDefinition {
        builtin_definition(
            NAME,
            "Fetch a public http(s) URL and return its text (HTML reduced to text).",
            serde_json::json!({
                "type": "object",
                "properties": {"url": {"type": "string"}},
                "required": ["url"]
            }),
            ToolKind::Fetch,
            true,
        )
    }

    async fn execute(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let args: Args = parse_args(NAME, args)?;
        let page = tokio::select! {
            page = ctx.builtins.web.fetch(&args.url) => page?,
            () = ctx.cancel.cancelled() => {
                return Err(ToolError::Failed("the fetch was cancelled".to_owned()));
            }
        };
        let mut text = format!("URL: {}\n\n{}", page.url, page.text);
        if page.truncated {
            text.push_str(&format!(
                "\n[… the page is longer than {} KiB; the rest was not fetched …]",
                MAX_BODY_BYTES / 1024
            ));
        }
        let raw_output = serde_json::json!({
            "url": page.url,
            "status": page.status,
            "content_type": page.content_type,
            "bytes": page.bytes,
            "truncated": page.truncated,
        });
        Ok(ToolOutput {
            text,
            raw_output,
            diffs: Vec::new(),
            images: Vec::new(),
        })
    }
}
