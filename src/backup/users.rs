//! The `protected_users` collector's reduction: a tenant's users, counted
//! per module and protection, never kept one by one (addresses and names
//! are personal data, and the wire type does not even decode them).

use crate::avepoint::subscriptions::{TenantUser, user_module_label};

/// Users of one tenant with one module protected or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCount {
    /// `mailbox`, `onedrive`, or `other` for a module code not documented.
    pub module: &'static str,
    /// Whether the module is protected.
    pub protected: bool,
    /// How many users.
    pub users: u64,
}

/// Count `users` per module and protection, sorted by module then
/// protection. A module entry without a readable code or flag is not
/// counted (it is unknown, not unprotected); mailbox and OneDrive always
/// have both rows, so "none unprotected" is a 0, not an absent series.
pub fn count_users(users: &[TenantUser]) -> Vec<UserCount> {
    let mut counts: Vec<UserCount> = ["mailbox", "onedrive"]
        .into_iter()
        .flat_map(|module| {
            [false, true].map(|protected| UserCount {
                module,
                protected,
                users: 0,
            })
        })
        .collect();
    for status in users.iter().flat_map(|user| &user.module_status) {
        let (Some(code), Some(protected)) = (status.module.value(), status.is_protected.value())
        else {
            continue;
        };
        let module = user_module_label(code).unwrap_or("other");
        match counts
            .iter_mut()
            .find(|c| c.module == module && c.protected == protected)
        {
            Some(count) => count.users = count.users.saturating_add(1),
            None => counts.push(UserCount {
                module,
                protected,
                users: 1,
            }),
        }
    }
    counts.sort_by_key(|c| (c.module, c.protected));
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avepoint::model::Page;

    fn users(json: &str) -> Vec<TenantUser> {
        serde_json::from_str::<Page<TenantUser>>(json).unwrap().data
    }

    fn count(counts: &[UserCount], module: &str, protected: bool) -> Option<u64> {
        counts
            .iter()
            .find(|c| c.module == module && c.protected == protected)
            .map(|c| c.users)
    }

    #[test]
    fn the_documented_sample_counts_one_mailbox_unprotected() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/testdata/avepoint-docs/tenant-users.json"
        );
        let counts = count_users(&users(&std::fs::read_to_string(path).unwrap()));
        assert_eq!(count(&counts, "mailbox", false), Some(1));
        assert_eq!(count(&counts, "mailbox", true), Some(1));
        assert_eq!(count(&counts, "onedrive", false), Some(0));
        assert_eq!(count(&counts, "onedrive", true), Some(2));
        assert_eq!(counts.len(), 4);
    }

    #[test]
    fn odd_modules_are_other_and_unreadable_entries_are_not_counted() {
        let counts = count_users(&users(
            r#"[{"moduleStatus": [{"module": 7, "isProtected": false},
                                  {"module": 0, "isProtected": "maybe"},
                                  {"module": "x", "isProtected": true},
                                  {"isProtected": false}]},
                {"moduleStatus": null}, {"email": "a@b.example"}]"#,
        ));
        assert_eq!(count(&counts, "other", false), Some(1));
        assert_eq!(count(&counts, "mailbox", false), Some(0));
        assert_eq!(counts.iter().map(|c| c.users).sum::<u64>(), 1);
    }
}
