//! Title search over the session listing (`GET /api/sessions?q=`): the
//! gateway pages through agent-loop's listing (newest first) and keeps the
//! sessions whose title contains the query, ignoring case. It is stateless:
//! its cursor names the agent-loop page to read and how many sessions of
//! that page were already looked at. One request looks at no more than
//! [`SCAN_LIMIT`] sessions, so a search of a large store answers in time,
//! possibly with fewer matches than asked and a cursor to go on.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openheim_proto::agent_loop::v1::{ListSessionsRequest, SessionInfo};
use openheim_proto::common::v1::Caller;

use crate::backends::Backends;
use crate::error::{ApiError, Backend};

/// Sessions one search request looks at, at most.
pub const SCAN_LIMIT: usize = 2000;
/// Sessions asked of agent-loop per call while searching.
const PAGE: u32 = 200;

/// Where a search goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// agent-loop's cursor of the page to read (`""`: the first).
    page: String,
    /// Sessions of that page already looked at.
    skip: usize,
}

impl Cursor {
    /// `SKIP.PAGE` with the page cursor in URL-safe base64.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.skip, URL_SAFE_NO_PAD.encode(&self.page))
    }

    pub fn decode(text: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::BadRequest("invalid cursor for a title search".to_owned());
        let (skip, page) = text.split_once('.').ok_or_else(invalid)?;
        let skip = skip.parse().map_err(|_| invalid())?;
        let page = URL_SAFE_NO_PAD.decode(page).map_err(|_| invalid())?;
        let page = String::from_utf8(page).map_err(|_| invalid())?;
        Ok(Self { page, skip })
    }
}

/// Whose sessions a search looks at.
pub struct Scope {
    pub caller: Caller,
    /// Every user's (admins only; agent-loop refuses others).
    pub all_users: bool,
}

/// Up to `limit` sessions whose title contains `query`, from `cursor` on,
/// and the cursor of the rest (`None` when the listing is exhausted).
pub async fn titles(
    backends: &Backends,
    scope: &Scope,
    query: &str,
    limit: u32,
    cursor: Option<Cursor>,
) -> Result<(Vec<SessionInfo>, Option<Cursor>), ApiError> {
    let needle = query.to_lowercase();
    let limit = limit as usize;
    let mut at = cursor.unwrap_or(Cursor {
        page: String::new(),
        skip: 0,
    });
    let mut found = Vec::new();
    let mut scanned = 0;
    loop {
        let request = ListSessionsRequest {
            page_size: PAGE,
            cursor: at.page.clone(),
            caller: Some(scope.caller.clone()),
            all_users: scope.all_users,
        };
        let page = backends
            .agent_loop()
            .list_sessions(request)
            .await
            .map_err(|status| ApiError::from_status(Backend::AgentLoop, &status))?
            .into_inner();
        let count = page.sessions.len();
        for (index, session) in page.sessions.into_iter().enumerate().skip(at.skip) {
            scanned += 1;
            if !session.title.to_lowercase().contains(&needle) {
                continue;
            }
            found.push(session);
            if found.len() == limit {
                let next = match (index + 1 < count, page.next_cursor.is_empty()) {
                    (true, _) => Some(Cursor {
                        page: at.page,
                        skip: index + 1,
                    }),
                    (false, false) => Some(Cursor {
                        page: page.next_cursor,
                        skip: 0,
                    }),
                    (false, true) => None,
                };
                return Ok((found, next));
            }
        }
        if page.next_cursor.is_empty() {
            return Ok((found, None));
        }
        at = Cursor {
            page: page.next_cursor,
            skip: 0,
        };
        if scanned >= SCAN_LIMIT {
            return Ok((found, Some(at)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = Cursor {
            page: "1795490004000:0f3c".to_owned(),
            skip: 7,
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "x", "7", "x.AAAA", "1.!!", "1./w"] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?} accepted");
        }
    }
}
