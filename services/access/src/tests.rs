//! The rule against an independent statement of it.

use super::*;

/// Who may do what, written out case by case as the documentation states
/// it, without calling anything in the crate: (is admin, owns the
/// resource, there is a resource, action) → decision.
fn expected(admin: bool, owns: bool, has_owner: bool, action: Action) -> Decision {
    use Action::*;
    use Decision::*;
    match (action, admin, owns, has_owner) {
        (ListOwnSessions, _, _, _) => Allow,
        (ReadDeployment, _, _, _) => Allow,
        (ListAllSessions, true, _, _) => Allow,
        (ListAllSessions, false, _, _) => Forbidden,
        (ReadSession, _, true, true) => Allow,
        (ReadSession, true, false, true) => Allow,
        (ReadSession, _, _, _) => NotFound,
        (UseSession, _, true, true) => Allow,
        (UseSession, _, _, _) => NotFound,
        (DeleteSession, _, true, true) => Allow,
        (DeleteSession, _, _, _) => NotFound,
        (UseMemoryNote, _, true, true) => Allow,
        (UseMemoryNote, _, _, _) => NotFound,
    }
}

const USERS: [&str; 4] = ["alice", "bob", "default", "Alice"];
const OWNERS: [Option<&str>; 6] = [
    Some("alice"),
    Some("bob"),
    Some(""),
    Some("default"),
    Some("alice "),
    None,
];

#[test]
fn ten_thousand_random_requests_match_the_table() {
    let mut rng = fastrand::Rng::with_seed(17);
    let mut mismatches = Vec::new();
    for _ in 0..10_000 {
        let user = USERS[rng.usize(..USERS.len())];
        let role = if rng.bool() { Role::Admin } else { Role::User };
        let action = Action::ALL[rng.usize(..Action::ALL.len())];
        let owner = OWNERS[rng.usize(..OWNERS.len())];
        let principal = Principal::new(user, role);
        // Ownership by plain string comparison; a stored "" is "default".
        let owns = match owner {
            Some("") => user == "default",
            Some(owner) => owner == user,
            None => false,
        };
        let want = expected(role == Role::Admin, owns, owner.is_some(), action);
        let got = authorize(&principal, action, owner);
        if got != want {
            mismatches.push((user, role, action, owner, got, want));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}

#[test]
fn another_users_session_is_answered_as_missing() {
    let bob = Principal::new("bob", Role::User);
    for action in [
        Action::ReadSession,
        Action::UseSession,
        Action::DeleteSession,
    ] {
        assert_eq!(authorize(&bob, action, Some("alice")), Decision::NotFound);
        assert_eq!(authorize(&bob, action, Some("bob")), Decision::Allow);
    }
    let admin = Principal::new("root", Role::Admin);
    assert_eq!(
        authorize(&admin, Action::ReadSession, Some("alice")),
        Decision::Allow
    );
    assert_eq!(
        authorize(&admin, Action::UseSession, Some("alice")),
        Decision::NotFound
    );
    assert!(Principal::local().owns(""));
}

#[test]
fn user_ids_are_checked() {
    assert!(check_user_id("alice@example.com").is_ok());
    assert_eq!(check_user_id(""), Err(BadUserId::Empty));
    assert_eq!(check_user_id("a\nb"), Err(BadUserId::Control));
    assert_eq!(check_user_id(&"x".repeat(129)), Err(BadUserId::TooLong));
}
