//! The service around the router on each connection: it marks each request
//! on the connection's slot in the tracker until its response's body has
//! been written, and takes the response's place under the bound on
//! responses in progress when it is handed over (a 503 instead when there
//! is none).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};

use super::connections::{RequestGuard, SlotHandle};
use super::responses::{ResponseBound, ResponsePermit, bounded};

/// `S` with every request marked on the connection's slot, so the tracker
/// knows when the connection is busy, and bounded by `responses`.
#[derive(Clone)]
pub(super) struct Tracked<S> {
    inner: S,
    slot: SlotHandle,
    peer: SocketAddr,
    responses: Option<Arc<ResponseBound>>,
}

impl<S> Tracked<S> {
    /// Wrap `inner` for the connection of `slot`, from `peer`.
    pub(super) fn new(
        inner: S,
        slot: SlotHandle,
        peer: SocketAddr,
        responses: Option<Arc<ResponseBound>>,
    ) -> Self {
        Self {
            inner,
            slot,
            peer,
            responses,
        }
    }
}

impl<S, B> tower_service::Service<Request<B>> for Tracked<S>
where
    S: tower_service::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The client's address, for the bcrypt queues (and any handler).
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let mut guard = self.slot.request_started();
        // The place is taken when the response is handed over, after basic
        // auth and the round: a refusal (401, 429) or a request still
        // waiting for its round holds no place, so a flood of wrong
        // passwords from a scraper's own address cannot take the scraper's.
        let bound = self
            .responses
            .clone()
            .filter(|_| bounded(request.uri().path()));
        let peer = self.peer;
        // A client that already holds its whole share would get a 503 at
        // hand-over anyway: say so now, before the handler runs (auth,
        // the round, the encoding), so a flood of unread requests from one
        // address costs no CPU beyond this check.
        if bound
            .as_ref()
            .is_some_and(|bound| bound.own_share_full(peer.ip()))
        {
            tracing::debug!(%peer, "this client's responses in progress are at its share; answered 503");
            guard.writing();
            let refused = too_many_responses().map(|body| written(body, guard, None));
            return Box::pin(std::future::ready(Ok(refused)));
        }
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let permit = match bound.map(|bound| bound.try_acquire(peer.ip())) {
                Some(Err(full)) => {
                    tracing::debug!(
                        %peer,
                        own_share = full.own_share,
                        "too many responses in progress; answered 503"
                    );
                    guard.writing();
                    return Ok(too_many_responses().map(|body| written(body, guard, None)));
                }
                Some(Ok(permit)) => Some(permit),
                None => None,
            };
            guard.writing();
            Ok(response.map(|body| written(body, guard, permit)))
        })
    }
}

/// The 503 when the bound is full: come back in a second.
fn too_many_responses() -> Response<Body> {
    let mut response = Response::new(Body::from("Too many responses in progress; retry later\n"));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `body`, holding `guard` and `permit` until it has been written.
fn written(body: Body, guard: RequestGuard, permit: Option<ResponsePermit>) -> Body {
    Body::new(TrackedBody {
        inner: body,
        held: Some((guard, permit)),
    })
}

/// A response body that holds its request's guard and place until its
/// last frame has been taken (hyper then drops it) or it is dropped
/// unfinished (the connection is gone). Size hints pass through, so a
/// `Content-Length` stays.
struct TrackedBody {
    inner: Body,
    held: Option<(RequestGuard, Option<ResponsePermit>)>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.held = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
