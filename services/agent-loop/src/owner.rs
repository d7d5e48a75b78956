//! Whose a session is: the caller a request names and the owner a
//! session stores (the rule itself is `openheim_access::authorize`).

use openheim_access::{LOCAL_USER, Principal, Role, owner_or_local};
use openheim_proto::common::v1::Caller;

/// The principal a request names; absent = the local user.
pub fn principal_of(caller: Option<&Caller>) -> Principal {
    match caller {
        Some(caller) => {
            let role = if caller.admin {
                Role::Admin
            } else {
                Role::User
            };
            Principal::new(owner_or_local(&caller.user), role)
        }
        None => Principal::local(),
    }
}

/// The caller a session's own requests are made as (a sub-agent's, on
/// its owner's behalf).
pub fn owner_caller(owner: &str) -> Caller {
    Caller {
        user: owner_or_local(owner).to_owned(),
        admin: false,
    }
}

/// What a new session of `principal` stores as its owner: "" for the
/// local user, as sessions stored before owners were.
pub fn owner_field(principal: &Principal) -> String {
    if principal.user == LOCAL_USER {
        String::new()
    } else {
        principal.user.clone()
    }
}
