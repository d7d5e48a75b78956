//! The names MCP tools are offered under: `{server}__{tool}`, restricted to
//! what every LLM provider accepts (`^[A-Za-z0-9_-]{1,64}$`), unique within
//! one listing, and stable from one listing to the next.
//!
//! Stability matters because the model sees a name in one request and calls
//! it in a later one: a name never depends on the order tools were listed in,
//! only on the server and tool names (and, for collisions, on which other
//! tools are visible).

use std::collections::{BTreeMap, HashSet};

/// Longest name providers accept.
pub const MAX_NAME_LEN: usize = 64;
/// Between the server and the tool name.
pub const SEPARATOR: &str = "__";
/// Hex digits of the hash suffix that makes a cut or colliding name unique.
const HASH_HEX_LEN: usize = 8;

/// One tool to name: its server and its name on that server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolKey<'a> {
    pub server: &'a str,
    pub tool: &'a str,
}

/// Replaces every character outside `[A-Za-z0-9_-]` with `_` (one per
/// character, so `é` becomes a single `_`).
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Names for `keys`, in the same order, pairwise distinct.
///
/// A name is `sanitize(server)__sanitize(tool)`. It gets a `_` + hash suffix
/// when it is longer than [`MAX_NAME_LEN`] (then cut to fit) or when another
/// key produces the same name — except for the one key whose name needed no
/// change at all (or the first of identical such keys), which keeps the
/// plain name a user would expect.
pub fn assign(keys: &[ToolKey<'_>]) -> Vec<String> {
    let candidates: Vec<Candidate> = keys.iter().map(|k| Candidate::of(*k)).collect();
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        groups.entry(c.name.as_str()).or_default().push(i);
    }
    let mut names: Vec<String> = candidates.iter().map(|c| c.name.clone()).collect();
    for members in groups.values().filter(|m| m.len() > 1) {
        let exact: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| candidates[i].exact)
            .collect();
        // One exact key keeps the name; so does the first of several equal
        // exact keys (a session server named like a global one: the global
        // server, listed first, keeps its names).
        let keeper = exact
            .first()
            .copied()
            .filter(|&first| exact.iter().all(|&i| keys[i] == keys[first]));
        for &i in members.iter().filter(|&&i| Some(i) != keeper) {
            names[i] = with_hash(&candidates[i].base, &hash_hex(keys[i], 0));
        }
    }
    make_unique(keys, &candidates, names)
}

/// The first name a key would get, before looking at other keys.
struct Candidate {
    /// `sanitize(server)__sanitize(tool)`, uncut.
    base: String,
    /// `base`, or its cut and hashed form when too long.
    name: String,
    /// The name is exactly `server__tool`: nothing replaced, nothing cut.
    exact: bool,
}

impl Candidate {
    fn of(key: ToolKey<'_>) -> Self {
        let (server, tool) = (sanitize(key.server), sanitize(key.tool));
        // Sanitizing only ever replaces characters, so equal means untouched.
        let unchanged = server == key.server && tool == key.tool;
        let base = format!("{server}{SEPARATOR}{tool}");
        if base.len() > MAX_NAME_LEN {
            let name = with_hash(&base, &hash_hex(key, 0));
            Self {
                base,
                name,
                exact: false,
            }
        } else {
            Self {
                name: base.clone(),
                base,
                exact: unchanged,
            }
        }
    }
}

/// Resolves what the collision rule cannot: identical keys (the same server
/// name attached twice) and hashed names that happen to equal another name.
/// Later keys are re-hashed with a counter until free; earlier keys win, so
/// global servers (listed first) keep their names.
fn make_unique(keys: &[ToolKey<'_>], candidates: &[Candidate], names: Vec<String>) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::with_capacity(names.len());
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let mut name = name;
        let mut salt = 1;
        while taken.contains(&name) {
            name = with_hash(&candidates[i].base, &hash_hex(keys[i], salt));
            salt += 1;
        }
        taken.insert(name.clone());
        out.push(name);
    }
    out
}

/// `base` cut so that `_` + `hash` fits in [`MAX_NAME_LEN`], then suffixed.
/// `base` is sanitized, hence ASCII, so any byte index is a char boundary.
fn with_hash(base: &str, hash: &str) -> String {
    let keep = MAX_NAME_LEN - 1 - hash.len();
    let cut = &base[..base.len().min(keep)];
    format!("{cut}_{hash}")
}

/// FNV-1a (64 bit) of the original, unsanitized names, folded to
/// [`HASH_HEX_LEN`] hex digits. Hand-rolled because the standard hasher's
/// output may change between Rust releases, and names must not.
fn hash_hex(key: ToolKey<'_>, salt: u32) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let salt_bytes = salt.to_le_bytes();
    // 0xff never occurs in UTF-8, so it separates the parts unambiguously.
    let parts: [&[u8]; 4] = [
        key.server.as_bytes(),
        &[0xff],
        key.tool.as_bytes(),
        &salt_bytes,
    ];
    for byte in parts.into_iter().flatten() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    let folded = (hash >> 32) ^ (hash & 0xffff_ffff);
    format!("{folded:0width$x}", width = HASH_HEX_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(server: &'a str, tool: &'a str) -> ToolKey<'a> {
        ToolKey { server, tool }
    }

    fn is_valid(name: &str) -> bool {
        (1..=MAX_NAME_LEN).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    #[test]
    fn plain_names_are_server_and_tool() {
        assert_eq!(assign(&[key("testserver", "echo")]), ["testserver__echo"]);
        assert_eq!(assign(&[key("my-srv", "get_it")]), ["my-srv__get_it"]);
    }

    #[test]
    fn characters_outside_the_alphabet_become_underscores() {
        assert_eq!(sanitize("a.b c/d:e"), "a_b_c_d_e");
        assert_eq!(
            assign(&[key("fs server", "read.file")]),
            ["fs_server__read_file"]
        );
    }

    #[test]
    fn unicode_is_replaced_one_underscore_per_character() {
        assert_eq!(sanitize("café"), "caf_");
        assert_eq!(sanitize("日本語"), "___");
        assert_eq!(sanitize("🦀x"), "_x");
        let names = assign(&[key("wörld", "grüße")]);
        assert_eq!(names, ["w_rld__gr__e"]);
        assert!(is_valid(&names[0]));
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let tool = "t".repeat(100);
        let first = assign(&[key("server", &tool)]);
        let again = assign(&[key("other", "x"), key("server", &tool)]);
        assert_eq!(first[0].len(), MAX_NAME_LEN);
        assert!(is_valid(&first[0]));
        assert!(first[0].starts_with("server__ttt"));
        assert_eq!(first[0], again[1], "the name depends on nothing else");
        // Two long names sharing their first 55 characters stay apart.
        let other = format!("{}y", "t".repeat(99));
        let both = assign(&[key("server", &tool), key("server", &other)]);
        assert_ne!(both[0], both[1]);
        assert!(both.iter().all(|n| is_valid(n)));
    }

    #[test]
    fn a_name_of_exactly_64_characters_is_kept() {
        let tool = "a".repeat(MAX_NAME_LEN - "s__".len());
        let names = assign(&[key("s", &tool)]);
        assert_eq!(names[0], format!("s__{tool}"));
    }

    #[test]
    fn an_exact_name_keeps_its_name_and_the_changed_one_gets_a_hash() {
        let names = assign(&[key("s", "a.b"), key("s", "a_b")]);
        assert_eq!(names[1], "s__a_b");
        assert!(names[0].starts_with("s__a_b_") && names[0].len() == "s__a_b_".len() + 8);
        // The order of listing does not matter.
        let swapped = assign(&[key("s", "a_b"), key("s", "a.b")]);
        assert_eq!(swapped, [names[1].clone(), names[0].clone()]);
    }

    #[test]
    fn colliding_changed_names_all_get_distinct_hashes() {
        let names = assign(&[key("s", "a.b"), key("s", "a:b"), key("s", "a b")]);
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("s__a_b_") && is_valid(n))
        );
        let unique: HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), 3);
    }

    #[test]
    fn separator_ambiguity_between_servers_is_resolved() {
        // Both are exactly `a__b__c`: neither may keep it alone.
        let names = assign(&[key("a__b", "c"), key("a", "b__c")]);
        assert_ne!(names[0], names[1]);
        assert!(names.iter().all(|n| n.starts_with("a__b__c_")));
    }

    #[test]
    fn identical_keys_still_get_distinct_names() {
        let names = assign(&[key("dup", "echo"), key("dup", "echo")]);
        assert_eq!(names[0], "dup__echo", "the first listed keeps the name");
        assert_ne!(names[0], names[1]);
        assert!(is_valid(&names[1]));
    }

    #[test]
    fn a_hashed_name_never_shadows_a_real_one() {
        let long = "x".repeat(80);
        let hashed = assign(&[key("s", &long)])[0].clone();
        let tool = hashed.strip_prefix("s__").unwrap_or_default().to_owned();
        let names = assign(&[key("s", &tool), key("s", &long)]);
        assert_ne!(names[0], names[1]);
    }

    #[test]
    fn empty_parts_still_give_valid_names() {
        let names = assign(&[key("", "tool"), key("srv", "")]);
        assert_eq!(names, ["__tool", "srv__"]);
        assert!(names.iter().all(|n| is_valid(n)));
    }
}
