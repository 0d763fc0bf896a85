//! Where an API call goes: its URL, parsed once for hyper, and the
//! `Host` header of a plain-`http` one.
//!
//! Imports nothing of the crate.

use http::HeaderValue;
use url::Url;

/// Where a call goes: its URL, and the same as hyper's `Uri`, parsed
/// once (for every call it was 3 % of a scrape's instructions; a report's
/// is kept built with its URL, `report_urls::ReportUrls`).
#[derive(Debug)]
pub(super) struct Destination {
    /// The URL, for reqwest, messages and the response.
    pub url: Url,
    /// `None` if hyper cannot read it (the call then fails, saying why).
    uri: Option<http::Uri>,
    /// The `Host` header of a plain-`http` URL, built once. hyper's client
    /// adds one to every HTTP/1 request that has none, formatting it anew
    /// each time (`host:port`, 3 % of a scrape's instructions against the
    /// simulator). Only for `http`: over TLS, ALPN may choose HTTP/2,
    /// which carries the authority in `:authority` and to which hyper
    /// adds no `Host`, so neither do we.
    host: Option<HeaderValue>,
}

impl Destination {
    /// `url`, parsed for hyper too.
    pub(super) fn new(url: Url) -> Self {
        let uri = http::Uri::try_from(url.as_str()).ok();
        let host = url
            .host_str()
            .filter(|_| url.scheme() == "http")
            .and_then(|host| {
                // As hyper's client writes it: the port only if not 80
                // (`Url` already leaves a default port out).
                let value = match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                };
                HeaderValue::from_str(&value).ok()
            });
        Self { url, uri, host }
    }

    /// hyper's `Uri`; `None` if hyper cannot read the URL.
    pub(super) fn uri(&self) -> Option<&http::Uri> {
        self.uri.as_ref()
    }

    /// The `Host` header to send, if this crate sets it (plain `http`).
    pub(super) fn host(&self) -> Option<&HeaderValue> {
        self.host.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(url: &str) -> Option<String> {
        let to = Destination::new(Url::parse(url).unwrap());
        to.host().map(|value| value.to_str().unwrap().to_owned())
    }

    #[test]
    fn host_is_written_as_hyper_writes_it_and_only_for_plain_http() {
        assert_eq!(
            host("http://127.0.0.1:8080/a").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(host("http://[::1]:9/a").as_deref(), Some("[::1]:9"));
        assert_eq!(
            host("http://graph.example:80/a").as_deref(),
            Some("graph.example")
        );
        assert_eq!(
            host("http://graph.example/a").as_deref(),
            Some("graph.example")
        );
        // Over TLS, ALPN may pick HTTP/2: hyper decides there.
        assert_eq!(host("https://graph.example:8443/a"), None);
    }
}
