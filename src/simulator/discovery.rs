//! The simulated discovery endpoints: the customer list and each
//! customer's scan profile list, paged, with the paging lies, respelled
//! ids, bogus items and floods the discovery tests switch on.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{
    Answer, PageQuery, SCAN_PROFILES_READ, admit, api_error, background_delay, page,
    with_request_id,
};
use super::state::SimState;
use super::{flood, wire};
use crate::sync::lock;

/// Permission of the customer list.
const CUSTOMERS_READ: &str = "elements.customers.read.all";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct BatchBody {
    customer_ids: Option<Vec<String>>,
    scan_profile_ids: Option<Vec<String>>,
}

/// Count a discovery request, admit it, and fail it when discovery
/// failures are injected.
async fn admit_discovery(
    state: &SimState,
    headers: &HeaderMap,
    permission: &str,
) -> Result<u64, Response> {
    state
        .stats
        .discovery_requests
        .fetch_add(1, Ordering::Relaxed);
    background_delay(state).await;
    let request_id = admit(state, headers, permission).await?;
    if state.discovery_failing.load(Ordering::Relaxed) {
        return Err(api_error(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            request_id,
            "injected discovery failure",
        ));
    }
    Ok(request_id)
}

/// `POST .../customers/batch`: the visible customers, or those the body
/// names.
pub(super) async fn customers_batch(
    State(state): State<Arc<SimState>>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    body: Option<Json<BatchBody>>,
) -> Answer {
    let request_id = admit_discovery(&state, &headers, CUSTOMERS_READ).await?;
    let flood = state.customer_flood.load(Ordering::Relaxed);
    if let Some(template) = state.customers.first().map(wire::customer_item)
        && flood > 0
    {
        let body = flood::fresh_customers(&state, flood, template, query.position());
        return Ok(with_request_id(
            &state,
            Json(body).into_response(),
            request_id,
        ));
    }
    let wanted = body.and_then(|Json(body)| body.customer_ids);
    Ok(page(
        &state,
        customer_items(&state, wanted),
        &query,
        request_id,
    ))
}

fn customer_items(state: &SimState, wanted: Option<Vec<String>>) -> Vec<Value> {
    let hidden = lock(&state.hidden_customers).clone();
    let bogus = state
        .bogus_customer
        .load(Ordering::Relaxed)
        .then(wire::bogus_customer_item);
    state
        .customers
        .iter()
        .filter(|c| wanted.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .filter(|c| !hidden.contains(&c.id))
        .map(wire::customer_item)
        .chain(bogus)
        .chain(respelled_customers(state))
        .collect()
}

/// With [`SimState::respelled_ids`]: the first customer twice more, its id
/// in upper case with braces and without hyphens, as a server that stores
/// ids as it was given them might.
fn respelled_customers(state: &SimState) -> Vec<Value> {
    let Some(first) = state
        .customers
        .first()
        .filter(|_| state.respelled_ids.load(Ordering::Relaxed))
    else {
        return Vec::new();
    };
    respellings(&first.id)
        .into_iter()
        .map(|id| {
            let mut item = wire::customer_item(first);
            item["id"] = json!(id);
            item
        })
        .collect()
}

/// Other spellings of a UUID that parse to the same one.
fn respellings(id: &str) -> [String; 2] {
    [format!("{{{}}}", id.to_uppercase()), id.replace('-', "")]
}

/// `POST .../customers/{id}/scan-profiles/batch`: a visible customer's
/// profiles, or those the body names.
pub(super) async fn profiles_batch(
    State(state): State<Arc<SimState>>,
    Path(customer_id): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
    body: Option<Json<BatchBody>>,
) -> Answer {
    let request_id = admit_discovery(&state, &headers, SCAN_PROFILES_READ).await?;
    let hidden = lock(&state.hidden_customers).contains(&customer_id);
    let customer = state
        .customers
        .iter()
        .find(|c| c.id == customer_id && !hidden)
        .ok_or_else(|| {
            api_error(
                &state,
                StatusCode::NOT_FOUND,
                request_id,
                "customer not found",
            )
        })?;
    let wanted = body.and_then(|Json(body)| body.scan_profile_ids);
    let respelled = state.respelled_ids.load(Ordering::Relaxed);
    let items: Vec<Value> = customer
        .profiles
        .iter()
        .filter(|p| wanted.as_ref().is_none_or(|ids| ids.contains(&p.id)))
        .flat_map(|profile| {
            let item = wire::profile_item(profile);
            let copies: Vec<Value> = if respelled {
                respellings(&profile.id)
                    .into_iter()
                    .map(|profile_id| {
                        let mut copy = item.clone();
                        copy["profileId"] = json!(profile_id);
                        copy
                    })
                    .collect()
            } else {
                Vec::new()
            };
            std::iter::once(item).chain(copies)
        })
        .collect();
    Ok(page(&state, items, &query, request_id))
}
