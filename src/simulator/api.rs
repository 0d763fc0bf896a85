//! The simulated API routes: both scan profile report endpoints and the
//! profile details endpoint (with the injected faults), and both discovery
//! endpoints (with paging), behind the bearer, permission, latency and
//! random-fault checks every route shares. The bodies come from `wire.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Fault;
use super::state::SimState;
use super::wire;
use crate::sync::lock;

/// Permission of both profile endpoints and of the profile list.
pub(super) const SCAN_PROFILES_READ: &str = "elements.scanprofiles.read.all";

/// What a route answers: a refusal is an `Err` so `?` can pass it on from
/// the checks; axum sends both sides alike.
pub(super) type Answer = Result<Response, Response>;

/// An error answer with the documented error body, whose `requestId` is
/// the header's value and whose `traceId` is derived from it.
pub(super) fn api_error(
    state: &SimState,
    status: StatusCode,
    request_id: u64,
    message: &str,
) -> Response {
    let body = wire::error_body(
        status.as_u16(),
        message,
        &request_id_text(request_id),
        &wire::trace_id(request_id),
    );
    with_request_id(state, (status, Json(body)).into_response(), request_id)
}

fn request_id_text(request_id: u64) -> String {
    format!("sim-{request_id:08x}")
}

/// Every answer carries an id, as AvePoint's do, so the exporter's logs of
/// failures can be tested for it; unless told to leave it out, as a
/// gateway on the way might.
pub(super) fn with_request_id(
    state: &SimState,
    mut response: Response,
    request_id: u64,
) -> Response {
    if state.omit_request_id_header.load(Ordering::Relaxed) {
        return response;
    }
    if let Ok(value) = HeaderValue::from_str(&request_id_text(request_id)) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

fn json_response(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A 400 in the documented envelope: `message` just "Bad Request", the
/// causes in `errors`.
fn bad_request(state: &SimState, request_id: u64, errors: Value) -> Response {
    let mut body = wire::error_body(
        400,
        "Bad Request",
        &request_id_text(request_id),
        &wire::trace_id(request_id),
    );
    body["errors"] = errors;
    with_request_id(
        state,
        (StatusCode::BAD_REQUEST, Json(body)).into_response(),
        request_id,
    )
}

pub(super) fn throttled(
    state: &SimState,
    request_id: u64,
    retry_after: Option<HeaderValue>,
) -> Response {
    let mut response = api_error(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        request_id,
        "rate limit exceeded",
    );
    if let Some(value) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `background_latency`, for the endpoints the exporter reads in the
/// background (lists, details, backup), never for the scan reports.
pub(super) async fn background_delay(state: &SimState) {
    if !state.config.background_latency.is_zero() {
        tokio::time::sleep(state.config.background_latency).await;
    }
}

/// Bearer check, scope check, latency and random faults shared by every API
/// route; the request id on success.
pub(super) async fn admit(
    state: &SimState,
    headers: &HeaderMap,
    permission: &str,
) -> Result<u64, Response> {
    let request_id = state.next_request_id();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !json {
        state
            .stats
            .requests_without_json_content_type
            .fetch_add(1, Ordering::Relaxed);
    }
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
    }
    if state.reject_all_tokens.load(Ordering::Relaxed) {
        return Err(api_error(
            state,
            StatusCode::UNAUTHORIZED,
            request_id,
            "token rejected",
        ));
    }
    match bearer_grants(state, headers, permission) {
        None => {
            return Err(api_error(
                state,
                StatusCode::UNAUTHORIZED,
                request_id,
                "missing, unknown or expired token",
            ));
        }
        Some(false) => {
            return Err(api_error(
                state,
                StatusCode::FORBIDDEN,
                request_id,
                &format!("the app lacks the permission {permission}"),
            ));
        }
        Some(true) => {}
    }
    if state.coin(request_id, 0x429, state.config.throttle_rate) {
        return Err(throttled(
            state,
            request_id,
            Some(HeaderValue::from_static("1")),
        ));
    }
    if state.coin(request_id, 0x500, state.config.error_rate) {
        return Err(api_error(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            request_id,
            "internal server error",
        ));
    }
    Ok(request_id)
}

/// Whether the request's live bearer token holds `permission`; `None` when
/// there is no live token.
fn bearer_grants(state: &SimState, headers: &HeaderMap, permission: &str) -> Option<bool> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))?;
    lock(&state.tokens)
        .get(token)
        .filter(|issued| issued.expires_at > Instant::now())
        .map(|issued| issued.scopes.iter().any(|scope| scope == permission))
}

/// Both profile endpoints: `.../scan-profiles-v2/{id}` (`WITH_LISTS` false)
/// and `.../scan-profiles/{id}/changes`, which adds the changed objects.
pub(super) async fn profile<const WITH_LISTS: bool>(
    State(state): State<Arc<SimState>>,
    Path((customer_id, profile_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    state.stats.profile_requests.fetch_add(1, Ordering::Relaxed);
    *lock(&state.requests_per_profile)
        .entry(profile_id.clone())
        .or_default() += 1;
    if !WITH_LISTS {
        state
            .stats
            .v2_profile_requests
            .fetch_add(1, Ordering::Relaxed);
    }
    let request_id = admit(&state, &headers, SCAN_PROFILES_READ).await?;
    let path_status = if WITH_LISTS {
        state.changes_path_status.load(Ordering::Relaxed)
    } else {
        state.v2_path_status.load(Ordering::Relaxed)
    };
    if path_status != 0 {
        let status = StatusCode::from_u16(path_status).unwrap_or(StatusCode::NOT_FOUND);
        return Err(api_error(&state, status, request_id, "resource not found"));
    }
    let fault = state.fault(&profile_id);
    let report = match &fault {
        Some(Fault::Report(report)) => Some(report.clone()),
        _ => state.report(&customer_id, &profile_id),
    }
    .ok_or_else(|| profile_not_found(&state, request_id))?;
    let list_length = lock(&state.change_list_sizes).get(&profile_id).copied();
    if let (true, Some(length), None | Some(Fault::Report(_))) = (WITH_LISTS, list_length, &fault) {
        let body =
            wire::streamed_changes(&wire::report_body(&report, false), state.lists_tail(length));
        let response = (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        );
        return Ok(with_request_id(
            &state,
            response.into_response(),
            request_id,
        ));
    }
    let body = wire::report_body(&report, WITH_LISTS);
    Ok(answer_with_fault(&state, fault, body, request_id, &REPORT_FIELDS).await)
}

/// AvePoint's 404 for a profile the customer does not have.
fn profile_not_found(state: &SimState, request_id: u64) -> Response {
    api_error(
        state,
        StatusCode::NOT_FOUND,
        request_id,
        "scan profile not found",
    )
}

/// `GET .../customers/{c}/scan-profiles/{p}`: the profile's details, or
/// the fault injected for them ([`super::FaultAt::Details`]).
pub(super) async fn profile_details(
    State(state): State<Arc<SimState>>,
    Path((customer_id, profile_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    state.stats.details_requests.fetch_add(1, Ordering::Relaxed);
    background_delay(&state).await;
    let request_id = admit(&state, &headers, SCAN_PROFILES_READ).await?;
    let body = state
        .customers
        .iter()
        .find(|c| c.id == customer_id)
        .and_then(|c| Some((c, c.profiles.iter().find(|p| p.id == profile_id)?)))
        .map(|(customer, profile)| wire::details_body(customer, profile))
        .ok_or_else(|| profile_not_found(&state, request_id))?;
    let fault = lock(&state.details_faults).get(&profile_id).cloned();
    Ok(answer_with_fault(&state, fault, body, request_id, &DETAILS_FIELDS).await)
}

/// Which fields [`Fault::MissingField`] drops and [`Fault::WrongTypes`]
/// spoils in a body.
struct FaultFields {
    required: &'static str,
    typed: &'static str,
    wrong_value: &'static str,
}

const REPORT_FIELDS: FaultFields = FaultFields {
    required: "lastScanStatus",
    typed: "newRegisteredContentCount",
    wrong_value: "many",
};

const DETAILS_FIELDS: FaultFields = FaultFields {
    required: "enableDailyScan",
    typed: "enableDailyScan",
    wrong_value: "sometimes",
};

/// Send `body` as the injected fault bends it (or as is, without one).
async fn answer_with_fault(
    state: &SimState,
    fault: Option<Fault>,
    mut body: Value,
    request_id: u64,
    fields: &FaultFields,
) -> Response {
    let response = match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return api_error(state, status, request_id, "injected fault");
        }
        Some(Fault::BadRequest(errors)) => return bad_request(state, request_id, errors),
        Some(Fault::Throttle(retry_after)) => {
            let retry_after = retry_after.and_then(|v| HeaderValue::from_str(&v).ok());
            return throttled(state, request_id, retry_after);
        }
        Some(Fault::Reset) => return reset(),
        Some(Fault::Redirect(location)) => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            json_response(body.to_string())
        }
        Some(Fault::Truncated) => json_response(first_half(body.to_string())),
        Some(Fault::Field(name, value)) => {
            body[name.as_str()] = value;
            json_response(body.to_string())
        }
        Some(Fault::Huge(size)) => {
            body["description"] = json!("x".repeat(size));
            json_response(body.to_string())
        }
        Some(Fault::NotJson) => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Service temporarily unavailable</body></html>",
        )
            .into_response(),
        Some(Fault::MissingField) => {
            body.as_object_mut().map(|o| o.remove(fields.required));
            json_response(body.to_string())
        }
        Some(Fault::WrongTypes) => {
            body[fields.typed] = json!(fields.wrong_value);
            json_response(body.to_string())
        }
        Some(Fault::Trickle { bytes, per_second }) => {
            body["description"] = json!("x".repeat(bytes.saturating_sub(body.to_string().len())));
            trickle(body.to_string().into_bytes(), per_second)
        }
        Some(Fault::NotApplicable) => {
            // What AvePoint sends where it has no value: "N/A", "", null,
            // .NET's minimum date, a space for the `T`.
            for (field, value) in [
                ("profileName", Value::Null),
                ("tenantDomain", Value::Null),
                ("description", Value::Null),
                ("modifiedTime", json!("N/A")),
                ("lastUpdateTime", json!("0001-01-01T00:00:00")),
                ("createdTime", json!("")),
                ("impersonationAccount", Value::Null),
            ] {
                if let Some(slot) = body.get_mut(field) {
                    *slot = value;
                }
            }
            json_response(body.to_string())
        }
        Some(
            Fault::Report(_)
            | Fault::BareList
            | Fault::OneJobTypeOnly
            | Fault::Body(_)
            | Fault::FreshModules,
        )
        | None => json_response(body.to_string()),
    };
    with_request_id(state, response, request_id)
}

/// The first half of `text`, cut on a character boundary.
fn first_half(mut text: String) -> String {
    let mut cut = text.len() / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

/// A body stream that fails makes hyper abort the connection mid-response,
/// which the client sees as a reset.
/// `body` in 1 KiB chunks at `per_second` bytes a second, chunked (no
/// `Content-Length`).
fn trickle(body: Vec<u8>, per_second: usize) -> Response {
    const CHUNK: usize = 1024;
    let pause = Duration::from_secs_f64(CHUNK as f64 / per_second.max(1) as f64);
    let chunks: Vec<axum::body::Bytes> = body
        .chunks(CHUNK)
        .map(axum::body::Bytes::copy_from_slice)
        .collect();
    let stream = futures_util::StreamExt::then(
        futures_util::stream::iter(chunks),
        move |chunk| async move {
            tokio::time::sleep(pause).await;
            Ok::<_, std::io::Error>(chunk)
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from_stream(stream))
        .unwrap_or_default()
}

fn reset() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("injected reset"))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from_stream(failing))
        .unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PageQuery {
    page_index: Option<u32>,
    page_size: Option<u32>,
}

impl PageQuery {
    /// The page index and size asked for, as [`page`] reads them.
    pub(super) fn position(&self) -> (u32, u32) {
        let index = self.page_index.unwrap_or(1).max(1);
        (index, self.page_size.unwrap_or(50).clamp(1, 100))
    }
}

/// One page of `items`, with the metadata the client pages by (inflated,
/// and the last page repeated, when paging lies are switched on).
pub(super) fn page(
    state: &SimState,
    items: Vec<Value>,
    query: &PageQuery,
    request_id: u64,
) -> Response {
    let (page_index, page_size) = query.position();
    let lying = state.paging_lies.load(Ordering::Relaxed);
    let total_count = items.len() as u64 + if lying { 1000 } else { 0 };
    let mut skip = (page_index - 1).saturating_mul(page_size) as usize;
    if lying && skip >= items.len() {
        // Past the end: send the last page again instead of an empty one.
        skip = items.len().saturating_sub(page_size as usize);
    }
    let data: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(page_size as usize)
        .collect();
    let body = wire::page_body(data, page_index, page_size, total_count);
    with_request_id(state, Json(body).into_response(), request_id)
}
