//! Where the server listens: every `--web.listen-address` (resolved,
//! checked against the others, then bound), or the sockets systemd passes
//! (`--web.systemd-socket`), as Prometheus' exporter-toolkit does.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;

/// Why the server cannot listen where it was told to. Each names the
/// address or the socket, so the startup error says which one to fix.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// No address at all (the command line always gives one).
    #[error("no --web.listen-address given")]
    NoAddress,
    /// An address that does not resolve, or resolves to nothing.
    #[error("--web.listen-address {address}: {source}")]
    Resolve {
        /// The address as given.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The same address twice.
    #[error("--web.listen-address {address} is given twice; give each address once")]
    Duplicate {
        /// The address as given.
        address: String,
    },
    /// Two addresses that would take the same port on a shared interface.
    #[error(
        "--web.listen-address {address} overlaps --web.listen-address {earlier}: both take port {port} \
         ({wildcard}); give one of them"
    )]
    Overlap {
        /// The later address, as given.
        address: String,
        /// The earlier address it overlaps, as given.
        earlier: String,
        /// The port both take.
        port: u16,
        /// How they overlap, for the message.
        wildcard: &'static str,
    },
    /// Binding failed (address in use, not on this host, permission).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address as given.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// `--web.systemd-socket`, but systemd passed this process no socket.
    #[error(
        "--web.systemd-socket: systemd passed no sockets ({reason}); start the exporter through its \
         .socket unit (deploy/systemd/avepoint-exporter.socket), or drop the flag and use --web.listen-address"
    )]
    NoSystemdSockets {
        /// What the environment said instead.
        reason: String,
    },
    /// A TCP socket systemd passed that is bound but not listening: accepting
    /// on it would fail forever, so the exporter would run and never serve.
    #[error(
        "--web.systemd-socket: socket {number} of {count} that systemd passed ({address}) is bound \
         but not listening; whatever passes it must listen on it (ListenStream= in a .socket unit \
         does, with Accept=no)"
    )]
    SystemdSocketNotListening {
        /// Which one, from 1 (in the .socket unit's order).
        number: usize,
        /// How many were passed.
        count: usize,
        /// The address it is bound to.
        address: String,
    },
    /// A socket systemd passed that is not a TCP stream socket.
    #[error(
        "--web.systemd-socket: socket {number} of {count} that systemd passed: {source} \
         (the .socket unit needs ListenStream= with a port or an IP address and port)"
    )]
    SystemdSocket {
        /// Which one, from 1 (in the .socket unit's order).
        number: usize,
        /// How many were passed.
        count: usize,
        /// Why it cannot be used.
        source: io::Error,
    },
}

/// Resolve a Prometheus-style listen address: `:10290` means every
/// interface (`[::]:10290`, see [`bind`]), anything else is `host:port`.
pub async fn resolve_listen_address(address: &str) -> io::Result<SocketAddr> {
    let address = if address.starts_with(':') {
        format!("[::]{address}")
    } else {
        address.to_owned()
    };
    tokio::net::lookup_host(&address)
        .await?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("listen address {address:?} resolves to nothing"),
            )
        })
}

/// Bind a Prometheus-style listen address (see [`resolve_listen_address`]).
///
/// `:port` listens on every address, IPv4 and IPv6, as Prometheus' Go
/// servers do: one socket on `[::]`, which Linux makes dual-stack (unless
/// `net.ipv6.bindv6only` is set), falling back to `0.0.0.0` on a host
/// without IPv6.
pub async fn bind(address: &str) -> io::Result<TcpListener> {
    bind_resolved(address, resolve_listen_address(address).await?).await
}

async fn bind_resolved(address: &str, resolved: SocketAddr) -> io::Result<TcpListener> {
    match TcpListener::bind(resolved).await {
        Err(error) if address.starts_with(':') && resolved.is_ipv6() => {
            let ipv4 = SocketAddr::from(([0, 0, 0, 0], resolved.port()));
            tracing::debug!(%error, "no IPv6 here; listening on IPv4 only");
            TcpListener::bind(ipv4).await
        }
        result => result,
    }
}

/// Bind every address of a repeated `--web.listen-address`, all or none.
///
/// All are resolved and checked against each other before the first is
/// bound, so a duplicate or an overlap (`:9`, which takes every interface,
/// beside `127.0.0.1:9`) is reported by name instead of as the second
/// bind's "address in use". Port 0 (any free port) never overlaps.
pub async fn bind_all(addresses: &[String]) -> Result<Vec<TcpListener>, ListenError> {
    if addresses.is_empty() {
        return Err(ListenError::NoAddress);
    }
    let mut resolved: Vec<(&str, SocketAddr)> = Vec::with_capacity(addresses.len());
    for address in addresses {
        let socket =
            resolve_listen_address(address)
                .await
                .map_err(|source| ListenError::Resolve {
                    address: address.clone(),
                    source,
                })?;
        for (earlier, other) in &resolved {
            if let Some(wildcard) = overlap(*other, socket) {
                return Err(if *earlier == address.as_str() {
                    ListenError::Duplicate {
                        address: address.clone(),
                    }
                } else {
                    ListenError::Overlap {
                        address: address.clone(),
                        earlier: (*earlier).to_owned(),
                        port: socket.port(),
                        wildcard,
                    }
                });
            }
        }
        resolved.push((address, socket));
    }
    let mut listeners = Vec::with_capacity(resolved.len());
    for (address, socket) in resolved {
        let listener =
            bind_resolved(address, socket)
                .await
                .map_err(|source| ListenError::Bind {
                    address: address.to_owned(),
                    source,
                })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Whether sockets bound to `a` and `b` would take the same port on some
/// interface, and how (for the message); `None` when they are apart.
///
/// `[::]` counts as every IPv6 and IPv4 address: the exporter binds it
/// dual-stack (Linux's default). An IPv4-mapped IPv6 address is its IPv4
/// address.
pub fn overlap(a: SocketAddr, b: SocketAddr) -> Option<&'static str> {
    if a.port() != b.port() || a.port() == 0 {
        return None;
    }
    let (a, b) = (a.ip().to_canonical(), b.ip().to_canonical());
    if a == b {
        return Some("the same address");
    }
    let covers = |wide: IpAddr, other: IpAddr| match wide {
        IpAddr::V6(ip) => ip.is_unspecified(),
        IpAddr::V4(ip) => ip.is_unspecified() && other.is_ipv4(),
    };
    if covers(a, b) || covers(b, a) {
        Some("one of them listens on every interface")
    } else {
        None
    }
}

/// The listening sockets systemd passed this process (socket activation:
/// `LISTEN_FDS` sockets from fd 3, for the process `LISTEN_PID`), in the
/// .socket unit's order. At least one, each a TCP stream socket.
///
/// Call it before anything else runs: `listenfd` removes `LISTEN_FDS` and
/// `LISTEN_PID` from the environment (so a child process cannot mistake
/// them for its own), which must not race another thread reading it.
/// Needs a Tokio runtime.
pub fn systemd_listeners() -> Result<Vec<TcpListener>, ListenError> {
    let reason = no_sockets_reason(
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::process::id(),
    );
    let mut passed = listenfd::ListenFd::from_env();
    let count = passed.len();
    if count == 0 {
        return Err(ListenError::NoSystemdSockets { reason });
    }
    (0..count)
        .map(|index| {
            let error = |source| ListenError::SystemdSocket {
                number: index + 1,
                count,
                source,
            };
            let listener = passed
                .take_tcp_listener(index)
                .map_err(error)?
                .ok_or_else(|| error(io::Error::other("already taken")))?;
            if !listening(&listener) {
                return Err(ListenError::SystemdSocketNotListening {
                    number: index + 1,
                    count,
                    address: listener
                        .local_addr()
                        .map_or_else(|e| e.to_string(), |a| a.to_string()),
                });
            }
            listener.set_nonblocking(true).map_err(error)?;
            TcpListener::from_std(listener).map_err(error)
        })
        .collect()
}

/// Whether `socket` is listening (`SO_ACCEPTCONN`). When the kernel cannot
/// say, it is taken as listening: the check is there to turn a silent
/// failure into a clear one, not to refuse a socket that may work.
fn listening(socket: &impl std::os::fd::AsFd) -> bool {
    match socket2::SockRef::from(socket).is_listener() {
        Ok(listening) => listening,
        Err(error) => {
            tracing::debug!(%error, "cannot tell whether a passed socket is listening");
            true
        }
    }
}

/// Why `LISTEN_FDS` and `LISTEN_PID` give this process no sockets, for the
/// error (only used when that is the case).
fn no_sockets_reason(fds: Option<&str>, pid: Option<&str>, own_pid: u32) -> String {
    match (fds, pid) {
        (None, _) => "LISTEN_FDS is not set".to_owned(),
        (Some(fds), _) if fds.parse::<u32>().is_err() => {
            format!("LISTEN_FDS={fds:?} is not a number")
        }
        (Some(_), Some(pid)) if pid.parse::<u32>().ok() != Some(own_pid) => {
            format!("LISTEN_PID={pid} is not this process ({own_pid})")
        }
        (Some(fds), _) => format!("LISTEN_FDS={fds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_overlap_on_the_same_port_of_a_shared_interface() {
        let same = Some("the same address");
        let every = Some("one of them listens on every interface");
        assert_eq!(overlap(at("127.0.0.1:9"), at("127.0.0.1:9")), same);
        assert_eq!(overlap(at("[::ffff:127.0.0.1]:9"), at("127.0.0.1:9")), same);
        assert_eq!(overlap(at("0.0.0.0:9"), at("127.0.0.1:9")), every);
        assert_eq!(overlap(at("127.0.0.1:9"), at("[::]:9")), every);
        assert_eq!(overlap(at("[::]:9"), at("[::1]:9")), every);
        assert_eq!(overlap(at("[::]:9"), at("0.0.0.0:9")), every);
        // Apart: another port, another address, or any free port.
        assert_eq!(overlap(at("127.0.0.1:9"), at("127.0.0.1:10")), None);
        assert_eq!(overlap(at("127.0.0.1:9"), at("[::1]:9")), None);
        assert_eq!(overlap(at("0.0.0.0:9"), at("[::1]:9")), None);
        assert_eq!(overlap(at("127.0.0.1:0"), at("127.0.0.1:0")), None);
    }

    #[tokio::test]
    async fn a_duplicate_or_overlap_is_named_before_anything_is_bound() {
        let owned = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        // Found before binding anything: the first 127.0.0.1:1 is not bound
        // (as root it could be) nor reported in use.
        let error = bind_all(&owned(&["127.0.0.1:1", "127.0.0.1:1"]))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "--web.listen-address 127.0.0.1:1 is given twice; give each address once"
        );
        let error = bind_all(&owned(&[":1", "127.0.0.1:1"])).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "--web.listen-address 127.0.0.1:1 overlaps --web.listen-address :1: both take port 1 \
             (one of them listens on every interface); give one of them"
        );
        let error = bind_all(&owned(&["127.0.0.1:0", "no-port"]))
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--web.listen-address no-port: "),
            "{error}"
        );
        assert!(matches!(bind_all(&[]).await, Err(ListenError::NoAddress)));
    }

    #[tokio::test]
    async fn a_bound_socket_that_is_not_listening_is_told_apart() {
        let bound = tokio::net::TcpSocket::new_v4().unwrap();
        bound.bind(at("127.0.0.1:0")).unwrap();
        assert!(!listening(&bound));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(listening(&listener));
        let error = ListenError::SystemdSocketNotListening {
            number: 2,
            count: 3,
            address: "127.0.0.1:10290".into(),
        };
        assert_eq!(
            error.to_string(),
            "--web.systemd-socket: socket 2 of 3 that systemd passed (127.0.0.1:10290) is bound but \
             not listening; whatever passes it must listen on it (ListenStream= in a .socket unit \
             does, with Accept=no)"
        );
    }

    #[test]
    fn the_missing_sockets_are_explained() {
        assert_eq!(no_sockets_reason(None, None, 7), "LISTEN_FDS is not set");
        assert_eq!(
            no_sockets_reason(Some("x"), Some("7"), 7),
            "LISTEN_FDS=\"x\" is not a number"
        );
        assert_eq!(
            no_sockets_reason(Some("1"), Some("8"), 7),
            "LISTEN_PID=8 is not this process (7)"
        );
        assert_eq!(no_sockets_reason(Some("0"), Some("7"), 7), "LISTEN_FDS=0");
    }
}
