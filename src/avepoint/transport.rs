//! How an API call reaches AvePoint: hyper's pooled client directly, with
//! the connection settings and TLS reqwest would use, or reqwest itself
//! when the environment names a proxy for the API.
//!
//! Why not reqwest for every call: per request, its redirect layer and its
//! response each parse the URL again from text (IDNA included), and its
//! proxy matcher and retry layer run, though we follow no redirect and
//! retry ourselves. At 1,000 profiles that was about an eighth of a
//! scrape's CPU (BENCHMARKS.md, "hyper directly"). reqwest still carries
//! every call through a proxy (CONNECT tunnels, proxy credentials, the
//! `NO_PROXY` rules: its `Proxy::system()`, the same rules
//! [`Matcher::from_env`] reads) and the token requests.
//!
//! Imports only `avepoint::http`, `avepoint::deadline_body` and
//! `avepoint::destination`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::{Method, Response, ResponseBuilderExt};
use tokio::time::Instant;
use url::Url;

use super::deadline_body::DeadlineBody;
use super::destination::Destination;
use super::http::error_chain;

/// The `User-Agent` of every call.
pub(super) const USER_AGENT_VALUE: &str = concat!("avepoint-exporter/", env!("CARGO_PKG_VERSION"));

/// [`USER_AGENT_VALUE`] as a header (checked when compiled).
const USER_AGENT_HEADER: HeaderValue = HeaderValue::from_static(USER_AGENT_VALUE);

/// `application/json`, for `Content-Type` and `Accept`.
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// How long an idle pooled connection is kept (reqwest's default too).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The connection settings both transports share.
pub(super) struct Connection<'a> {
    /// The API's base URL: whether a proxy applies to it.
    pub base_url: &'a Url,
    /// `avepoint.request_timeout`.
    pub request_timeout: Duration,
    /// Idle keep-alive connections kept per host: as many as requests may
    /// be in flight, so a round reuses its connections instead of opening
    /// some anew for every batch (with four kept at the default eight in
    /// flight: ~19 connects a scrape, CPU for nothing). Capped: an idle
    /// HTTP/1 connection keeps hyper's read buffer at the size its last
    /// body grew it to (up to ~400 KiB after a huge `changes` report):
    /// with 64 kept, +25 MiB that no body is using (heaptrack,
    /// BENCHMARKS.md "changes_memory"); 16 cost at most ~6 MiB.
    pub max_idle_per_host: usize,
    /// `avepoint.ca_file`'s certificates, for reqwest.
    pub extra_roots: &'a [reqwest::Certificate],
    /// `avepoint.ca_file` as read, PEM; empty for none.
    pub extra_roots_pem: &'a [u8],
}

impl Connection<'_> {
    /// How long a connect may take: `request_timeout`, at most 5 s.
    fn connect_timeout(&self) -> Duration {
        self.request_timeout.min(Duration::from_secs(5))
    }

    /// reqwest with these settings: the token requests' client, and every
    /// call's where a proxy applies.
    pub(super) fn reqwest_client(&self) -> Result<reqwest::Client, ClientError> {
        Ok(reqwest::Client::builder()
            .user_agent(USER_AGENT_VALUE)
            // A redirect would re-send the token request's form (with the
            // client secret) or the bearer token wherever it points, past
            // the https-only rule for the configured URLs. AvePoint does not
            // redirect; a 3xx is an error naming where it pointed.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(self.max_idle_per_host)
            .tls_certs_merge(self.extra_roots.iter().cloned())
            .build()?)
    }
}

/// Why the API client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// reqwest refused its settings (TLS setup).
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
    /// The platform's certificate verifier refused to start (no roots, or
    /// an extra root it cannot use).
    #[error("cannot set up TLS certificate checks: {0}")]
    Tls(String),
}

/// hyper's client over rustls.
type DirectClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The client every API call but the token request goes through.
#[derive(Debug, Clone)]
pub(super) enum Transport {
    /// hyper's pooled client, HTTP/1.1 or HTTP/2 as the server's ALPN
    /// says; behind an `Arc`, as every call clones the `ApiClient`.
    Direct(Arc<DirectClient>),
    /// reqwest, because a proxy applies to the API's base URL.
    Proxied(reqwest::Client),
}

/// One call to send.
pub(super) struct Outgoing<'a> {
    /// GET, or POST with [`Outgoing::json`].
    pub json: Option<&'a serde_json::Value>,
    /// Where to.
    pub to: &'a Destination,
    /// `Authorization: Bearer …`, marked sensitive.
    pub authorization: &'a HeaderValue,
    /// The whole call, headers and body, must end by then; a backstop,
    /// as the caller bounds the headers (and a report's body) itself.
    pub total_timeout: Duration,
}

/// A call that got no response.
#[derive(Debug)]
pub(super) struct SendError {
    /// What went wrong, with its causes.
    pub message: String,
    /// Whether it was a timeout.
    pub timeout: bool,
}

impl Transport {
    /// The direct client, or `proxied` when the environment's proxy rules
    /// apply to the API.
    pub(super) fn new(
        settings: &Connection<'_>,
        proxied: reqwest::Client,
    ) -> Result<Self, ClientError> {
        Self::with_proxy_rules(settings, proxied, &Matcher::from_env())
    }

    fn with_proxy_rules(
        settings: &Connection<'_>,
        proxied: reqwest::Client,
        proxy_rules: &Matcher,
    ) -> Result<Self, ClientError> {
        let base = http::Uri::try_from(settings.base_url.as_str()).ok();
        if base.is_none_or(|uri| proxy_rules.intercept(&uri).is_some()) {
            return Ok(Self::Proxied(proxied));
        }
        let mut http = HttpConnector::new();
        // As reqwest sets them: no Nagle delay on small requests, and
        // keep-alive probes so a dead peer is noticed while idle.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout()));
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(settings.extra_roots_pem)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(settings.max_idle_per_host)
            .build(https);
        Ok(Self::Direct(Arc::new(client)))
    }

    /// Send one call; the response's body is read by the caller, within
    /// `total_timeout` of now.
    pub(super) async fn send(&self, outgoing: Outgoing<'_>) -> Result<Response, SendError> {
        match self {
            Self::Direct(client) => send_direct(client, outgoing).await,
            Self::Proxied(client) => send_proxied(client, outgoing).await,
        }
    }
}

/// reqwest's TLS: rustls with the platform's verifier (the system's roots,
/// plus `avepoint.ca_file`), HTTP/2 offered by ALPN.
fn tls_config(extra_roots_pem: &[u8]) -> Result<rustls::ClientConfig, ClientError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(extra_roots_pem)
        .collect::<Result<_, _>>()
        .map_err(|error| ClientError::Tls(error.to_string()))?;
    let verifier = if extra.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
    }
    .map_err(|error| ClientError::Tls(error.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Tls(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

async fn send_direct(client: &DirectClient, outgoing: Outgoing<'_>) -> Result<Response, SendError> {
    let deadline = Instant::now() + outgoing.total_timeout;
    let request = direct_request(&outgoing)?;
    let response = match tokio::time::timeout_at(deadline, client.request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            return Err(SendError {
                timeout: is_timeout(&error),
                message: format!(
                    "error sending request for url ({}): {}",
                    outgoing.to.url,
                    error_chain(&error)
                ),
            });
        }
        Err(_) => {
            return Err(SendError {
                message: format!(
                    "error sending request for url ({}): operation timed out",
                    outgoing.to.url
                ),
                timeout: true,
            });
        }
    };
    let (mut parts, body) = response.into_parts();
    // A redirect's error message reads the URL (to resolve its `Location`).
    // Attached to every answer: without one, reqwest parses a placeholder
    // URL for each response, dearer than this copy.
    if let Ok(carrier) = http::Response::builder()
        .url(outgoing.to.url.clone())
        .body(())
    {
        parts.extensions.extend(carrier.into_parts().0.extensions);
    }
    let body = DeadlineBody {
        body,
        deadline: Box::pin(tokio::time::sleep_until(deadline)),
    };
    Ok(Response::from(http::Response::from_parts(
        parts,
        reqwest::Body::wrap(body),
    )))
}

fn direct_request(outgoing: &Outgoing<'_>) -> Result<http::Request<Full<Bytes>>, SendError> {
    let refused = |message: String| SendError {
        message,
        timeout: false,
    };
    let (method, body) = match outgoing.json {
        Some(json) => (
            Method::POST,
            serde_json::to_vec(json).map_err(|error| refused(error.to_string()))?,
        ),
        None => (Method::GET, Vec::new()),
    };
    let uri = outgoing.to.uri().cloned().ok_or_else(|| {
        refused(format!(
            "cannot build the request: {} is no valid URI",
            outgoing.to.url
        ))
    })?;
    // Field by field rather than through `http::request::Builder`, whose
    // every step moves the whole request (a few hundred instructions a
    // call, at one call per profile and scrape).
    let mut request = http::Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(USER_AGENT, USER_AGENT_HEADER);
    // AvePoint's docs ask for it on every request, GET included.
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(ACCEPT, JSON);
    headers.insert(AUTHORIZATION, outgoing.authorization.clone());
    if let Some(host) = outgoing.to.host() {
        headers.insert(HOST, host.clone());
    }
    Ok(request)
}

/// Whether an error of hyper's client (or its connector) was a timeout.
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

async fn send_proxied(
    client: &reqwest::Client,
    outgoing: Outgoing<'_>,
) -> Result<Response, SendError> {
    let request = match outgoing.json {
        Some(json) => client.post(outgoing.to.url.clone()).json(json),
        // AvePoint's docs ask for it on every request, GET included.
        None => client
            .get(outgoing.to.url.clone())
            .header(CONTENT_TYPE, "application/json"),
    };
    request
        .timeout(outgoing.total_timeout)
        .header(AUTHORIZATION, outgoing.authorization.clone())
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|error| SendError {
            message: error_chain(&error),
            timeout: error.is_timeout(),
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper_util::client::proxy::matcher::Matcher;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use url::Url;

    use super::{Connection, Outgoing, Transport};
    use crate::avepoint::http::{BodyError, read_body_limited};

    fn connection(base_url: &Url, request_timeout: Duration) -> Connection<'_> {
        Connection {
            base_url,
            request_timeout,
            max_idle_per_host: 4,
            extra_roots: &[],
            extra_roots_pem: b"",
        }
    }

    #[test]
    fn reqwest_carries_the_calls_exactly_when_a_proxy_applies_to_the_api() {
        let base = Url::parse("https://graph.avepointonlineservices.com/partner").unwrap();
        let settings = connection(&base, Duration::from_secs(5));
        let choose = |rules: Matcher| {
            Transport::with_proxy_rules(&settings, reqwest::Client::new(), &rules).unwrap()
        };
        assert!(matches!(
            choose(Matcher::builder().build()),
            Transport::Direct(_)
        ));
        assert!(matches!(
            choose(
                Matcher::builder()
                    .https("http://proxy.example:3128")
                    .build()
            ),
            Transport::Proxied(_)
        ));
        assert!(matches!(
            choose(Matcher::builder().all("http://proxy.example:3128").build()),
            Transport::Proxied(_)
        ));
        // An http:// proxy setting says nothing of an https:// API.
        assert!(matches!(
            choose(Matcher::builder().http("http://proxy.example:3128").build()),
            Transport::Direct(_)
        ));
        assert!(matches!(
            choose(
                Matcher::builder()
                    .all("http://proxy.example:3128")
                    .no(".avepointonlineservices.com")
                    .build()
            ),
            Transport::Direct(_)
        ));
    }

    /// A body that never ends is given up at the call's deadline, as
    /// reqwest's own timeout gave it up: a discovery page or a profile's
    /// details read whole must not hold their permit for ever.
    #[tokio::test]
    async fn a_body_that_never_ends_is_given_up_at_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 4096];
            let read = socket.read(&mut head).await.unwrap();
            let head = String::from_utf8_lossy(&head[..read]).into_owned();
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            for _ in 0..200 {
                if socket.write_all(b"1\r\n \r\n").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            head
        });
        let base = Url::parse(&format!("http://{address}/")).unwrap();
        let transport = Transport::new(
            &connection(&base, Duration::from_secs(5)),
            reqwest::Client::new(),
        )
        .unwrap();
        assert!(matches!(transport, Transport::Direct(_)));
        let url = base.join("partner/external/v3/general/customers").unwrap();
        let started = tokio::time::Instant::now();
        let response = transport
            .send(Outgoing {
                json: None,
                to: &super::Destination::new(url),
                authorization: &http::HeaderValue::from_static("Bearer token-abc"),
                total_timeout: Duration::from_millis(600),
            })
            .await
            .expect("the headers come at once");
        let error = read_body_limited(response, 1 << 20).await.unwrap_err();
        let waited = started.elapsed();
        assert!(
            matches!(&error, BodyError::Read(text) if text.contains("operation timed out")),
            "{error}"
        );
        assert!(
            waited >= Duration::from_millis(550) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /partner/external/v3/general/customers http/1.1\r\n"),
            "{head}"
        );
        for header in [
            "authorization: bearer token-abc\r\n",
            "accept: application/json\r\n",
            "content-type: application/json\r\n",
            concat!(
                "user-agent: avepoint-exporter/",
                env!("CARGO_PKG_VERSION"),
                "\r\n"
            ),
        ] {
            assert!(head.contains(header), "{header:?} missing in {head}");
        }
        // One Host header, ours, as hyper would have written it.
        assert_eq!(head.matches("\r\nhost: ").count(), 1, "{head}");
        assert!(head.contains(&format!("\r\nhost: {address}\r\n")), "{head}");
    }
}
