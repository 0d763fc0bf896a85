//! Issue #10, items 4 and 5: an upstream that redirects or refuses every
//! token must not get the credentials sent elsewhere, nor a token request
//! per profile per scrape.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use avepoint_exporter::simulator::Knob;
use avepoint_exporter::simulator::{Fault, FaultAt, SimulatorConfig};
use common::{Harness, Setup};

/// A listener on 127.0.0.1 that only counts the connections it gets: where
/// a followed redirect would have sent the credentials.
async fn trap() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
    });
    (format!("http://{address}"), hits)
}

#[tokio::test]
async fn a_redirecting_token_endpoint_gets_no_second_request_and_no_secret() {
    let harness = Harness::start(Setup::default()).await;
    let (target, hits) = trap().await;
    harness.sim.set(Knob::TokenRedirect(Some(&format!(
        "{target}/connect/token"
    ))));
    let message = common::auth_error_of_every_profile(&harness).await;
    assert_eq!(
        message,
        format!(
            "token endpoint answered HTTP 307 Temporary Redirect, a redirect to {target}: not followed, so the credentials are not sent there; check avepoint.token_url"
        )
    );
    assert_eq!(hits.load(Ordering::Relaxed), 0, "the redirect was followed");
    assert_eq!(harness.token_requests(), 1);
}

#[tokio::test]
async fn an_api_redirect_is_an_error_naming_where_it_pointed() {
    let harness = Harness::start(Setup::default()).await;
    let (target, hits) = trap().await;
    let (customer, profile) = harness.sim.profile_ids()[0].clone();
    harness.sim.set_fault(
        FaultAt::Report(&profile),
        Fault::Redirect(format!("{target}/elsewhere?x=1")),
    );
    let metrics = harness.scrape().await;
    assert_eq!(
        metrics.profile_value("avepoint_scan_profile_up", &customer, &profile),
        0.0
    );
    assert_eq!(metrics.up_count(), harness.sim.profile_ids().len() - 1);
    let snapshot = harness.state.rounds().collect(Duration::from_secs(5)).await;
    let error = snapshot
        .profiles
        .iter()
        .find(|p| p.target.profile_id == profile)
        .and_then(|p| p.outcome.as_ref().err())
        .expect("the redirected profile failed");
    assert_eq!(error.kind, "302");
    assert!(
        error.message.starts_with(&format!(
            "HTTP 302 Found: a redirect to {target}, not followed: AvePoint's API does not redirect"
        )),
        "{}",
        error.message
    );
    assert!(!error.message.contains("elsewhere"), "{}", error.message);
    assert_eq!(hits.load(Ordering::Relaxed), 0, "the redirect was followed");
}

#[tokio::test]
async fn an_api_refusing_every_token_costs_two_token_requests_then_a_pause() {
    let harness = Harness::start(Setup {
        sim: SimulatorConfig {
            customers: 20,
            profiles_per_customer: 10,
            ..SimulatorConfig::default()
        },
        ..Setup::default()
    })
    .await;
    harness.sim.set(Knob::RejectingAllTokens(true));
    let tokens = || harness.sim.stats().token_requests.load(Ordering::Relaxed);
    let profile_requests = || harness.sim.stats().profile_requests.load(Ordering::Relaxed);

    let first = harness
        .state
        .rounds()
        .collect(Duration::from_secs(10))
        .await;
    assert_eq!(first.failures(), 200);
    // The first token, and one fresh token after the first 401s: refused
    // too, so no more, however many profiles are waiting.
    assert_eq!(tokens(), 2);
    let sent = profile_requests();
    assert!(sent <= 2 * 8 + 8, "{sent} profile requests");

    let second = harness
        .state
        .rounds()
        .collect(Duration::from_secs(10))
        .await;
    assert_eq!(second.failures(), 200);
    assert_eq!(tokens(), 2, "the next scrape asked for tokens again");
    assert_eq!(profile_requests(), sent, "requests were sent with no hope");
    let error = second.profiles[100].outcome.as_ref().unwrap_err();
    assert_eq!(error.kind, "auth");
    assert!(
        error
            .message
            .starts_with("the API rejected a freshly issued token; no new token is requested for "),
        "{}",
        error.message
    );
    let metrics = harness.scrape().await;
    assert_eq!(metrics.value("avepoint_api_auth_backoffs_total", &[]), 1.0);
    assert_eq!(tokens(), 2);
}
