//! The distributed backend: notes in the deployment's Redis, shared by every
//! agent-loop replica. Every write goes to Redis before the call returns
//! (write-through; no replica caches a note), and search ranks by BM25 over
//! an inverted index kept in Redis, computed in the calling process.
//!
//! Key layout, under the session store's prefix `P` (`store.prefix`), where
//! `S` is a scope key (`u:<owner>` or `p:<owner>:<project>`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:mem:note:<id>` | hash | the note: owner, scope, project, text, tags (JSON), created, updated, length (terms), terms (distinct, space-separated), vec_model |
//! | `P:mem:post:<term>:S` | hash | the inverted index: note id → `tf:length` for the notes of scope `S` holding `term` |
//! | `P:mem:stats:S` | hash | `docs` and `length` (BM25's corpus statistics) and `gen` (bumped by every insert and delete) |
//! | `P:mem:list:S` | sorted set | note ids of scope `S` by update time (listing) |
//! | `P:mem:owner:<owner>` | sorted set | every note id of an owner by update time |
//! | `P:mem:vec:<hex(model)>:S` | hash | note id → embedding (f32 little-endian), per model |
//!
//! A search reads the postings of its terms in the visible scopes (one
//! pipelined round trip, with their statistics), scores BM25 with
//! [`crate::rank`], and reads the best notes (a second round trip). Inserts
//! and deletes are Lua scripts, so a note, its postings and the statistics
//! change together or not at all. Terms are letters and digits only
//! ([`crate::terms`]), so no key part is ambiguous.

use ::redis::aio::ConnectionManager;
use ::redis::{RedisError, Script, Value};
use openheim_redis_client::{Failure, OpenError, RedisConnection};
use std::collections::{HashMap, HashSet};

use crate::error::MemoryError;
use crate::note::{Listing, Note, Scope, ScopeKey, View, check_id};
use crate::rank::{self, Corpus, Posting, Scored};
use crate::store::{
    MemoryStore, NotePage, StoredVector, cursor_after, parse_cursor, tags_from_json, tags_json,
    vector_bytes, vector_from_bytes,
};
use crate::terms;

/// Ids read from a listing index per round trip while paging.
const LIST_BATCH: usize = 100;

/// Stores a note unless its id is taken.
/// KEYS: note, stats, list, owner index, vectors, then one posting hash per
/// term. ARGV: id, updated, length, has vector (1/0), vector, number of
/// note fields F, F field/value pairs, then one posting value per term.
const INSERT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local f = tonumber(ARGV[6])
local fields = {}
for i = 7, 6 + 2 * f do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
local base = 6 + 2 * f
for k = 6, #KEYS do redis.call('HSET', KEYS[k], ARGV[1], ARGV[base + k - 5]) end
redis.call('HINCRBY', KEYS[2], 'docs', 1)
redis.call('HINCRBY', KEYS[2], 'length', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'gen', 1)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
if ARGV[4] == '1' then redis.call('HSET', KEYS[5], ARGV[1], ARGV[5]) end
return 1
";

/// Removes a note if it is still the one read (same update time).
/// KEYS: as INSERT. ARGV: id, length, update time read.
const DELETE: &str = r"
if redis.call('HGET', KEYS[1], 'updated') ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[1])
for k = 6, #KEYS do redis.call('HDEL', KEYS[k], ARGV[1]) end
redis.call('HINCRBY', KEYS[2], 'docs', -1)
redis.call('HINCRBY', KEYS[2], 'length', -tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[2], 'gen', 1)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
return 1
";

/// Where and under which prefix a [`RedisMemory`] keeps its data.
#[derive(Debug, Clone)]
pub struct RedisMemoryOptions {
    /// `redis://…` or `rediss://…`.
    pub url: String,
    /// Every key starts with `<prefix>:mem:`.
    pub prefix: String,
}

/// Notes in Redis.
pub struct RedisMemory {
    /// Multiplexed, reconnects after failures; messages name its server,
    /// never the credentials.
    connection: RedisConnection,
    keys: Keys,
    insert: Script,
    delete: Script,
}

struct Keys {
    prefix: String,
}

impl Keys {
    fn note(&self, id: &str) -> String {
        format!("{}:mem:note:{id}", self.prefix)
    }
    fn posting(&self, term: &str, scope: &ScopeKey) -> String {
        format!("{}:mem:post:{term}:{}", self.prefix, scope.as_str())
    }
    fn stats(&self, scope: &ScopeKey) -> String {
        format!("{}:mem:stats:{}", self.prefix, scope.as_str())
    }
    fn list(&self, scope: &ScopeKey) -> String {
        format!("{}:mem:list:{}", self.prefix, scope.as_str())
    }
    fn owner(&self, owner: &str) -> String {
        format!("{}:mem:owner:{owner}", self.prefix)
    }
    fn vectors(&self, model: &str, scope: &ScopeKey) -> String {
        let model: String = model.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{}:mem:vec:{model}:{}", self.prefix, scope.as_str())
    }
}

impl RedisMemory {
    /// A store over the Redis at `options.url`; connects on first use. Must
    /// be called inside a Tokio runtime.
    pub fn open(options: &RedisMemoryOptions) -> Result<Self, MemoryError> {
        let connection = RedisConnection::open(&options.url).map_err(|e| match e {
            OpenError::NoRuntime => MemoryError::Backend(
                "the Redis memory must be opened inside a Tokio runtime".into(),
            ),
            other => MemoryError::Backend(other.to_string()),
        })?;
        Ok(Self {
            connection,
            keys: Keys {
                prefix: options.prefix.clone(),
            },
            insert: Script::new(INSERT),
            delete: Script::new(DELETE),
        })
    }

    fn error(&self, error: &RedisError) -> MemoryError {
        match self.connection.failure(error) {
            Failure::Unavailable(message) => MemoryError::Unavailable(message),
            Failure::Refused(message) => MemoryError::Backend(message),
        }
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.manager()
    }

    /// Up to `want` entries of the index `key` after `after`, newest first.
    async fn index_page(
        &self,
        key: &str,
        after: Option<&(i64, String)>,
        want: usize,
    ) -> Result<Vec<(i64, String)>, MemoryError> {
        let max = after.map_or_else(|| "+inf".to_owned(), |(ms, _)| ms.to_string());
        let mut found = Vec::new();
        let mut offset = 0;
        loop {
            let batch: Vec<(String, f64)> = ::redis::cmd("ZREVRANGEBYSCORE")
                .arg(key)
                .arg(&max)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(offset)
                .arg(LIST_BATCH)
                .query_async(&mut self.connection())
                .await
                .map_err(|e| self.error(&e))?;
            let fetched = batch.len();
            found.extend(
                batch
                    .into_iter()
                    .map(|(id, score)| (score as i64, id))
                    .filter(|(ms, id)| after.is_none_or(|(a_ms, a_id)| (ms, id) < (a_ms, a_id))),
            );
            if found.len() >= want || fetched < LIST_BATCH {
                found.truncate(want);
                return Ok(found);
            }
            offset += fetched;
        }
    }

    async fn read_notes(&self, ids: &[String]) -> Result<Vec<Option<Note>>, MemoryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.keys.note(id));
        }
        let raw: Vec<HashMap<String, String>> = pipe
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(&e))?;
        ids.iter()
            .zip(raw)
            .map(|(id, fields)| match fields.is_empty() {
                true => Ok(None),
                false => parse_note(id, &fields).map(Some),
            })
            .collect()
    }

    /// The keys a note's scripts touch, in the scripts' order.
    fn note_keys(&self, note: &Note, vector_model: &str, note_terms: &[&str]) -> Vec<String> {
        let scope = note.scope_key();
        let mut keys = vec![
            self.keys.note(&note.id),
            self.keys.stats(&scope),
            self.keys.list(&scope),
            self.keys.owner(&note.owner),
            self.keys.vectors(vector_model, &scope),
        ];
        keys.extend(note_terms.iter().map(|t| self.keys.posting(t, &scope)));
        keys
    }
}

#[async_trait::async_trait]
impl MemoryStore for RedisMemory {
    async fn insert(&self, note: &Note, vector: Option<&StoredVector>) -> Result<(), MemoryError> {
        let (frequencies, length) =
            terms::frequencies(&terms::indexed_text(&note.text, &note.tags));
        let mut distinct: Vec<(&str, u32)> = frequencies
            .iter()
            .map(|(t, tf)| (t.as_str(), *tf))
            .collect();
        distinct.sort_unstable();
        let names: Vec<&str> = distinct.iter().map(|(t, _)| *t).collect();
        let model = vector.map_or("", |v| v.model.as_str());
        let mut invocation = self.insert.prepare_invoke();
        for key in self.note_keys(note, model, &names) {
            invocation.key(key);
        }
        let fields: [(&str, String); 10] = [
            ("owner", note.owner.clone()),
            ("scope", note.scope.as_str().to_owned()),
            ("project", note.project.clone()),
            ("text", note.text.clone()),
            ("tags", tags_json(&note.tags)),
            ("created", note.created_at_ms.to_string()),
            ("updated", note.updated_at_ms.to_string()),
            ("length", length.to_string()),
            ("terms", names.join(" ")),
            ("vec_model", model.to_owned()),
        ];
        invocation
            .arg(&note.id)
            .arg(note.updated_at_ms)
            .arg(length)
            .arg(if vector.is_some() { "1" } else { "0" })
            .arg(vector.map(|v| vector_bytes(&v.values)).unwrap_or_default())
            .arg(fields.len());
        for (name, value) in &fields {
            invocation.arg(*name).arg(value);
        }
        for (_, tf) in &distinct {
            invocation.arg(format!("{tf}:{length}"));
        }
        let stored: i64 = invocation
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| self.error(&e))?;
        match stored {
            1 => Ok(()),
            _ => Err(MemoryError::Backend(format!(
                "note id {} is already taken",
                note.id
            ))),
        }
    }

    async fn search(
        &self,
        view: &View,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<Scored>, MemoryError> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let scopes = view.scope_keys();
        let mut pipe = ::redis::pipe();
        for scope in &scopes {
            pipe.cmd("HMGET")
                .arg(self.keys.stats(scope))
                .arg("docs")
                .arg("length");
        }
        for term in terms {
            for scope in &scopes {
                pipe.cmd("HGETALL").arg(self.keys.posting(term, scope));
            }
        }
        let mut replies: std::vec::IntoIter<Value> = pipe
            .query_async::<Vec<Value>>(&mut self.connection())
            .await
            .map_err(|e| self.error(&e))?
            .into_iter();
        let mut corpus = Corpus::default();
        for _ in &scopes {
            let (docs, length): (Option<u64>, Option<u64>) = parse(replies.next())?;
            corpus.documents += docs.unwrap_or(0);
            corpus.total_length += length.unwrap_or(0);
        }
        let (postings, project_ids) = read_postings(&mut replies, terms.len(), &scopes)?;
        let scored = rank::bm25(corpus, &postings)
            .into_iter()
            .map(|(id, score)| Scored {
                project: project_ids.contains(&id),
                id,
                score,
            })
            .collect();
        let mut ranked = rank::rank(scored);
        ranked.truncate(limit);
        Ok(ranked)
    }

    async fn get(&self, ids: &[String]) -> Result<Vec<Note>, MemoryError> {
        Ok(self.read_notes(ids).await?.into_iter().flatten().collect())
    }

    async fn list(
        &self,
        listing: &Listing,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<NotePage, MemoryError> {
        let after = cursor.map(parse_cursor).transpose()?;
        let indexes = match listing {
            Listing::View(view) => view
                .scope_keys()
                .iter()
                .map(|s| self.keys.list(s))
                .collect(),
            Listing::Owner(owner) => vec![self.keys.owner(owner)],
        };
        let mut entries = Vec::new();
        for index in &indexes {
            entries.extend(self.index_page(index, after.as_ref(), limit + 1).await?);
        }
        entries.sort_by(|a, b| b.cmp(a));
        entries.dedup();
        entries.truncate(limit + 1);
        let ids: Vec<String> = entries.into_iter().map(|(_, id)| id).collect();
        let mut notes: Vec<Note> = self.read_notes(&ids).await?.into_iter().flatten().collect();
        let more = notes.len() > limit;
        notes.truncate(limit);
        let next_cursor = match (more, notes.last()) {
            (true, Some(last)) => Some(cursor_after(last)),
            _ => None,
        };
        Ok(NotePage { notes, next_cursor })
    }

    async fn delete(
        &self,
        owner: &str,
        id: &str,
        view: Option<&View>,
    ) -> Result<Note, MemoryError> {
        check_id(id)?;
        let fields: HashMap<String, String> = ::redis::cmd("HGETALL")
            .arg(self.keys.note(id))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(&e))?;
        if fields.is_empty() {
            return Err(MemoryError::NotFound(id.to_owned()));
        }
        let note = parse_note(id, &fields)?;
        if note.owner != owner || view.is_some_and(|v| !v.sees(&note)) {
            return Err(MemoryError::NotFound(id.to_owned()));
        }
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
        let names: Vec<&str> = field("terms").split_whitespace().collect();
        let mut invocation = self.delete.prepare_invoke();
        for key in self.note_keys(&note, field("vec_model"), &names) {
            invocation.key(key);
        }
        invocation
            .arg(id)
            .arg(field("length"))
            .arg(field("updated"));
        let deleted: i64 = invocation
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| self.error(&e))?;
        match deleted {
            1 => Ok(note),
            _ => Err(MemoryError::NotFound(id.to_owned())),
        }
    }

    async fn generation(&self, scope: &ScopeKey) -> Result<u64, MemoryError> {
        let generation: Option<u64> = ::redis::cmd("HGET")
            .arg(self.keys.stats(scope))
            .arg("gen")
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(generation.unwrap_or(0))
    }

    async fn vectors(
        &self,
        scope: &ScopeKey,
        model: &str,
    ) -> Result<Vec<(String, Vec<f32>)>, MemoryError> {
        let raw: HashMap<String, Vec<u8>> = ::redis::cmd("HGETALL")
            .arg(self.keys.vectors(model, scope))
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(raw
            .into_iter()
            .filter_map(|(id, bytes)| match vector_from_bytes(&bytes) {
                Some(vector) => Some((id, vector)),
                None => {
                    tracing::warn!(note = %id, "skipping an unreadable vector");
                    None
                }
            })
            .collect())
    }

    async fn check(&self) -> Result<(), MemoryError> {
        let _: String = ::redis::cmd("PING")
            .query_async(&mut self.connection())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(())
    }
}

/// One term's postings: note id → its posting.
type Postings = HashMap<String, Posting>;

/// The posting lists of `terms` terms (each term's list over `scopes`,
/// merged), read from the next replies, and the ids of the notes found in a
/// project scope.
fn read_postings(
    replies: &mut impl Iterator<Item = Value>,
    terms: usize,
    scopes: &[ScopeKey],
) -> Result<(Vec<Postings>, HashSet<String>), MemoryError> {
    let mut project_ids = HashSet::new();
    let mut postings = Vec::with_capacity(terms);
    for _ in 0..terms {
        let mut merged = Postings::new();
        for scope in scopes {
            let raw: HashMap<String, String> = parse(replies.next())?;
            for (id, value) in raw {
                let Some(posting) = parse_posting(&value) else {
                    tracing::warn!(note = %id, "skipping an unreadable posting");
                    continue;
                };
                if scope.is_project() {
                    project_ids.insert(id.clone());
                }
                merged.insert(id, posting);
            }
        }
        postings.push(merged);
    }
    Ok((postings, project_ids))
}

fn parse<T: ::redis::FromRedisValue>(value: Option<Value>) -> Result<T, MemoryError> {
    let value =
        value.ok_or_else(|| MemoryError::Backend("Redis answered too few replies".into()))?;
    ::redis::from_redis_value(value)
        .map_err(|e| MemoryError::Corrupt(format!("unexpected Redis reply: {e}")))
}

/// `tf:length` → a posting.
fn parse_posting(value: &str) -> Option<Posting> {
    let (tf, length) = value.split_once(':')?;
    Some(Posting {
        tf: tf.parse().ok()?,
        length: length.parse().ok()?,
    })
}

fn parse_note(id: &str, fields: &HashMap<String, String>) -> Result<Note, MemoryError> {
    let corrupt = |what: &str| MemoryError::Corrupt(format!("note {id}: {what}"));
    let field = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| corrupt(&format!("no `{name}`")))
    };
    let number = |name: &str| -> Result<i64, MemoryError> {
        field(name)?
            .parse()
            .map_err(|_| corrupt(&format!("`{name}` is not a number")))
    };
    Ok(Note {
        id: id.to_owned(),
        text: field("text")?.clone(),
        tags: tags_from_json(field("tags")?)?,
        owner: field("owner")?.clone(),
        scope: Scope::parse(field("scope")?).ok_or_else(|| corrupt("unknown scope"))?,
        project: field("project")?.clone(),
        created_at_ms: number("created")?,
        updated_at_ms: number("updated")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_parse() {
        assert_eq!(parse_posting("3:41"), Some(Posting { tf: 3, length: 41 }));
        assert_eq!(parse_posting("3"), None);
        assert_eq!(parse_posting("x:1"), None);
    }

    #[test]
    fn model_names_cannot_collide_with_scope_keys() {
        let keys = Keys { prefix: "p".into() };
        let a = keys.vectors("m:p", &ScopeKey::user("o"));
        let b = keys.vectors("m", &ScopeKey::project("u", "o"));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_its_password() {
        let options = RedisMemoryOptions {
            url: "redis://:hunter2@cache:notaport".into(),
            prefix: "p".into(),
        };
        let Err(error) = RedisMemory::open(&options) else {
            panic!("opened a bad URL");
        };
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
