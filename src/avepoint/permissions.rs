//! Permissions: which one each endpoint needs, and finding out which of
//! the asked ones the app registration holds.
//!
//! AvePoint's identity service is IdentityServer, which refuses the whole
//! token request (`400 invalid_scope`) when the app lacks any one of the
//! requested scopes. Asked for together, one missing permission would take
//! every collector down. [`negotiate`] asks for all of them first and,
//! only when that is refused for its scope, for each one alone, then for a
//! token with just the ones that work; the collectors needing the others
//! fail alone, with an error naming the permission.
//!
//! Which permission an endpoint needs is the endpoint's own data
//! (`ApiEndpoint::permission`, `endpoint.rs`). Imports nothing of the crate.

use std::future::Future;

/// The items of a scope string, each once, in order.
pub fn scope_items(scope: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for item in scope.split_whitespace() {
        if !items.iter().any(|seen| seen == item) {
            items.push(item.to_owned());
        }
    }
    items
}

/// What [`negotiate`] ended with.
#[derive(Debug, PartialEq)]
pub enum Negotiated<T> {
    /// A token for every permission but `missing`.
    Granted {
        /// The token response.
        token: T,
        /// Asked for, and refused or not listed in the response's `scope`.
        missing: Vec<String>,
    },
    /// Every asked permission was refused: no token at all.
    NoneGranted {
        /// Every asked permission.
        missing: Vec<String>,
    },
}

/// Get a token for as many of `asked` as the app holds. `request` sends
/// one token request for a scope and returns the token and the response's
/// `scope` (what was granted, when the server says); `invalid_scope` tells
/// the refusal of a scope from any other failure, which ends the
/// negotiation with that error.
///
/// All of `asked` first: one request when every permission is held. When
/// that is refused for its scope, each permission alone, then (unless
/// only one is held, whose token is kept) one more for the held ones: at
/// most `asked.len() + 2` requests, on a refresh only.
pub async fn negotiate<T, E, F, Fut>(
    asked: &[String],
    request: F,
    invalid_scope: impl Fn(&E) -> bool,
) -> Result<Negotiated<T>, E>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(T, Option<String>), E>>,
{
    match request(asked.join(" ")).await {
        Ok((token, granted)) => {
            return Ok(Negotiated::Granted {
                token,
                missing: not_listed(asked, granted.as_deref()),
            });
        }
        Err(error) if !invalid_scope(&error) => return Err(error),
        Err(_) if asked.len() > 1 => {}
        Err(_) => {
            return Ok(Negotiated::NoneGranted {
                missing: asked.to_vec(),
            });
        }
    }
    let mut held = Vec::new();
    let mut missing = Vec::new();
    let mut alone = None;
    for permission in asked {
        match request(permission.clone()).await {
            Ok(answer) => {
                held.push(permission.clone());
                alone = Some(answer);
            }
            Err(error) if invalid_scope(&error) => missing.push(permission.clone()),
            Err(error) => return Err(error),
        }
    }
    let (token, granted) = match (held.len(), alone) {
        (0, _) | (_, None) => return Ok(Negotiated::NoneGranted { missing }),
        (1, Some(answer)) => answer,
        _ => request(held.join(" ")).await?,
    };
    missing.extend(not_listed(&held, granted.as_deref()));
    Ok(Negotiated::Granted { token, missing })
}

/// The items of `asked` that a response's `scope` leaves out. A response
/// without a `scope` (or with an empty one) says nothing: all granted.
fn not_listed(asked: &[String], granted: Option<&str>) -> Vec<String> {
    let Some(granted) = granted.filter(|g| !g.trim().is_empty()) else {
        return Vec::new();
    };
    asked
        .iter()
        .filter(|permission| !granted.split_whitespace().any(|g| g == permission.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A token endpoint that holds `held`, answering like IdentityServer;
    /// every scope asked is recorded.
    async fn run(asked: &str, held: &[&str]) -> (Result<Negotiated<String>, String>, Vec<String>) {
        let log = Mutex::new(Vec::new());
        let result = negotiate(
            &scope_items(asked),
            |scope: String| {
                log.lock().unwrap().push(scope.clone());
                let ok = scope.split_whitespace().all(|s| held.contains(&s));
                async move {
                    if ok {
                        Ok((format!("token for {scope}"), Some(scope)))
                    } else {
                        Err("invalid_scope".to_owned())
                    }
                }
            },
            |error: &String| error == "invalid_scope",
        )
        .await;
        (result, log.into_inner().unwrap())
    }

    #[tokio::test]
    async fn every_permission_held_costs_one_request() {
        let (result, asked) = run("a b c", &["a", "b", "c"]).await;
        assert_eq!(
            result,
            Ok(Negotiated::Granted {
                token: "token for a b c".into(),
                missing: vec![]
            })
        );
        assert_eq!(asked, ["a b c"]);
    }

    #[tokio::test]
    async fn one_missing_permission_leaves_the_others_a_token() {
        let (result, asked) = run("a b c", &["a", "c"]).await;
        assert_eq!(
            result,
            Ok(Negotiated::Granted {
                token: "token for a c".into(),
                missing: vec!["b".into()]
            })
        );
        assert_eq!(asked, ["a b c", "a", "b", "c", "a c"]);
        // One held: its own token serves, no extra request.
        let (result, asked) = run("a b", &["a"]).await;
        assert_eq!(
            result,
            Ok(Negotiated::Granted {
                token: "token for a".into(),
                missing: vec!["b".into()]
            })
        );
        assert_eq!(asked, ["a b", "a", "b"]);
    }

    #[tokio::test]
    async fn nothing_held_is_no_token() {
        let (result, asked) = run("a b", &[]).await;
        assert_eq!(
            result,
            Ok(Negotiated::NoneGranted {
                missing: vec!["a".into(), "b".into()]
            })
        );
        assert_eq!(asked, ["a b", "a", "b"]);
        let (result, asked) = run("a", &[]).await;
        assert_eq!(
            result,
            Ok(Negotiated::NoneGranted {
                missing: vec!["a".into()]
            })
        );
        assert_eq!(asked, ["a"]);
    }

    #[tokio::test]
    async fn another_failure_ends_the_negotiation() {
        let result = negotiate(
            &scope_items("a b"),
            |_: String| async { Err::<(String, Option<String>), _>("invalid_client") },
            |error: &&str| *error == "invalid_scope",
        )
        .await;
        assert_eq!(result, Err("invalid_client"));
    }

    #[test]
    fn a_response_scope_that_leaves_one_out_names_it() {
        let asked = scope_items("a b b c");
        assert_eq!(asked, ["a", "b", "c"]);
        assert_eq!(not_listed(&asked, Some("a c")), ["b"]);
        assert!(not_listed(&asked, None).is_empty());
        assert!(not_listed(&asked, Some(" ")).is_empty());
    }
}
