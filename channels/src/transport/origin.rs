//! `check_origin` (CONTRACT §2): a request that carries an `Origin` (a
//! browser's) must come from the server's own origin or from one listed in
//! `DUET_ALLOWED_ORIGINS`; a request without `Origin` (not a browser)
//! passes, as in Phoenix.
//!
//! The server's own origins follow from the address it listens on, not from
//! the request's `Host` header: a DNS-rebinding page (`http://evil.example:P`
//! made to resolve to this server) sends `Host: evil.example:P` and
//! `Origin: http://evil.example:P`, which agree with each other. Own are:
//! - listening on a loopback IP: `127.0.0.1`, `localhost` and `[::1]` (and
//!   that IP) at its port;
//! - on a specific IP: that IP at its port;
//! - on any address, an `Origin` equal to the `Host` header when that host
//!   is an IP literal or `localhost`: no name was looked up in DNS, so
//!   nothing was rebound (browsers resolve `localhost` to loopback
//!   themselves). This is how a server on `0.0.0.0` knows which of its
//!   addresses a page used, a container's mapped port included.
//!
//! Any other host name must be allow-listed (a line in the log says so).
//! Only `http` and `https` origins count, default ports (80, 443) may be
//! omitted; an `Origin` that is not visible ASCII or not an origin at all
//! (`null`, a path, user info) is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{header, HeaderMap};

/// The address the server listens on: the HTTP server puts it in every
/// request's extensions; it defines the server's own origins.
#[derive(Debug, Clone, Copy)]
pub struct ListenAddr(pub SocketAddr);

/// The "host name not allowed" line is logged at most this often: refused
/// requests must not flood the log.
const NAME_WARN_EVERY_MS: u64 = 10_000;

/// When that line was last logged (Unix ms; 0: never).
static NAME_WARNED_AT: AtomicU64 = AtomicU64::new(0);

/// An origin's host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    /// A host name, in lower case.
    Name(String),
}

/// `scheme://host[:port]` as browsers send it, with the port filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    secure: bool,
    host: Host,
    port: u16,
}

/// Whether a request may open a socket (see the module doc).
pub fn allowed(allow_list: &[String], headers: &HeaderMap, listen: Option<SocketAddr>) -> bool {
    let mut values = headers.get_all(header::ORIGIN).iter();
    let Some(value) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false; // two origins: which one is the page's?
    }
    let Some(origin) = value.to_str().ok().and_then(parse_origin) else {
        return false;
    };
    if allow_list
        .iter()
        .filter_map(|entry| parse_origin(entry))
        .any(|entry| entry == origin)
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if is_own(&origin, listen, host) {
        return true;
    }
    if let Host::Name(name) = &origin.host {
        warn_name_refused(name);
    }
    false
}

/// The entries of an allow-list that are not `http(s)://host[:port]`
/// (they can never match), for a warning at start-up.
pub fn unusable_entries(allow_list: &[String]) -> Vec<&str> {
    allow_list
        .iter()
        .map(String::as_str)
        .filter(|entry| parse_origin(entry).is_none())
        .collect()
}

fn is_own(origin: &Origin, listen: Option<SocketAddr>, host_header: Option<&str>) -> bool {
    if let Some(listen) = listen {
        let ip = listen.ip().to_canonical();
        if origin.port == listen.port() && !ip.is_unspecified() {
            let own_ip = |o: &IpAddr| {
                let o = o.to_canonical();
                o == ip
                    || (ip.is_loopback()
                        && (o == IpAddr::V4(Ipv4Addr::LOCALHOST)
                            || o == IpAddr::V6(Ipv6Addr::LOCALHOST)))
            };
            match &origin.host {
                Host::Ip(o) if own_ip(o) => return true,
                Host::Name(name) if name == "localhost" && ip.is_loopback() => return true,
                _ => {}
            }
        }
    }
    // The Host header alone, when no DNS name is in it.
    let default_port = if origin.secure { 443 } else { 80 };
    match host_header.and_then(|h| split_host_port(h, default_port)) {
        Some((host, port)) if not_rebindable(&host) => origin.host == host && origin.port == port,
        _ => false,
    }
}

/// An IP literal, or `localhost` (which browsers never ask DNS about).
fn not_rebindable(host: &Host) -> bool {
    match host {
        Host::Ip(_) => true,
        Host::Name(name) => name == "localhost",
    }
}

/// Parses `http(s)://host[:port]` (a trailing `/` is tolerated, for
/// allow-list entries); anything else is `None`.
fn parse_origin(s: &str) -> Option<Origin> {
    let (scheme, rest) = s.split_once("://")?;
    let secure = if scheme.eq_ignore_ascii_case("http") {
        false
    } else if scheme.eq_ignore_ascii_case("https") {
        true
    } else {
        return None;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = split_host_port(rest, if secure { 443 } else { 80 })?;
    Some(Origin { secure, host, port })
}

/// `host[:port]`, `[v6][:port]`: the host and the port (`default` if absent).
fn split_host_port(s: &str, default: u16) -> Option<(Host, u16)> {
    let (host, port) = if let Some(bracketed) = s.strip_prefix('[') {
        let (ip, after) = bracketed.split_once(']')?;
        let host = Host::Ip(IpAddr::V6(ip.parse::<Ipv6Addr>().ok()?));
        match after {
            "" => (host, None),
            after => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        let (name, port) = match s.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (s, None),
        };
        let host = match name.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ip(IpAddr::V4(ip)),
            Err(_) if is_host_name(name) => Host::Name(name.to_ascii_lowercase()),
            Err(_) => return None,
        };
        (host, port)
    };
    let port = match port {
        None => default,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
        Some(_) => return None,
    };
    Some((host, port))
}

/// Letters, digits, `-`, `_` and dots: what a DNS name may hold.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn warn_name_refused(name: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let last = NAME_WARNED_AT.load(Ordering::Relaxed);
    if now >= last + NAME_WARN_EVERY_MS
        && NAME_WARNED_AT
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            host = name,
            "socket refused: a page served under a host name may open sockets only if its origin is listed in DUET_ALLOWED_ORIGINS (e.g. DUET_ALLOWED_ORIGINS=https://{name})"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(origin: &str, host: Option<&str>, listen: &str, allow: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, origin.parse().unwrap());
        if let Some(host) = host {
            headers.insert(header::HOST, host.parse().unwrap());
        }
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        allowed(&allow, &headers, Some(listen.parse().unwrap()))
    }

    #[test]
    fn loopback_listener_owns_its_loopback_names_at_its_port() {
        let l = "127.0.0.1:4000";
        for own in [
            "http://127.0.0.1:4000",
            "http://localhost:4000",
            "http://LOCALHOST:4000",
            "http://[::1]:4000",
            "https://localhost:4000",
        ] {
            assert!(check(own, Some("x:1"), l, &[]), "{own}");
        }
        for foreign in [
            "http://127.0.0.1:4001",
            "http://127.0.0.2:4000",
            "http://localhost",
            "http://evil.example:4000",
        ] {
            assert!(!check(foreign, Some("127.0.0.1:4000"), l, &[]), "{foreign}");
        }
    }

    #[test]
    fn dns_rebinding_is_refused_whatever_the_host_header_says() {
        for listen in [
            "127.0.0.1:4000",
            "0.0.0.0:4000",
            "[::]:4000",
            "192.0.2.7:4000",
        ] {
            assert!(
                !check(
                    "http://evil.example:4000",
                    Some("evil.example:4000"),
                    listen,
                    &[]
                ),
                "{listen}"
            );
        }
    }

    #[test]
    fn specific_ip_owns_itself_and_ip_literal_hosts_match_the_origin() {
        assert!(check("http://192.0.2.7:4000", None, "192.0.2.7:4000", &[]));
        assert!(!check("http://localhost:4000", None, "192.0.2.7:4000", &[]));
        // On 0.0.0.0: the address the browser used, when it is an IP.
        let any = "0.0.0.0:80";
        assert!(check("http://198.51.100.3", Some("198.51.100.3"), any, &[]));
        assert!(check(
            "http://198.51.100.3",
            Some("198.51.100.3:80"),
            any,
            &[]
        ));
        assert!(check(
            "http://[2001:db8::1]:8080",
            Some("[2001:db8::1]:8080"),
            "[::]:8080",
            &[]
        ));
        assert!(!check(
            "http://198.51.100.3",
            Some("198.51.100.4"),
            any,
            &[]
        ));
        assert!(!check(
            "http://198.51.100.3:81",
            Some("198.51.100.3"),
            any,
            &[]
        ));
        assert!(!check("http://app.example", Some("app.example"), any, &[]));
        // localhost through a container's mapped port: the page and the socket agree.
        assert!(check(
            "http://localhost:8080",
            Some("localhost:8080"),
            any,
            &[]
        ));
        assert!(!check(
            "http://localhost:8080",
            Some("198.51.100.3:8080"),
            any,
            &[]
        ));
        assert!(!check(
            "http://localhost.evil.example",
            Some("localhost.evil.example"),
            any,
            &[]
        ));
    }

    #[test]
    fn allow_list_entries_match_by_scheme_host_and_port() {
        let allow = ["https://app.example", "http://Dev.Example:8080/"];
        let l = "0.0.0.0:4000";
        assert!(check("https://app.example", None, l, &allow));
        assert!(check("https://app.example:443", None, l, &allow));
        assert!(check("http://dev.example:8080", None, l, &allow));
        assert!(!check("http://app.example", None, l, &allow), "scheme");
        assert!(!check("https://app.example:8443", None, l, &allow), "port");
        assert!(!check("https://sub.app.example", None, l, &allow), "host");
    }

    #[test]
    fn non_origins_are_refused() {
        let l = "127.0.0.1:4000";
        for bad in [
            "null",
            "ftp://127.0.0.1:4000",
            "ws://127.0.0.1:4000",
            "http://127.0.0.1:4000/path",
            "http://user@127.0.0.1:4000",
            "http://127.0.0.1:4000?x",
            "http://127.0.0.1:",
            "http://127.0.0.1:99999",
            "http:// 127.0.0.1:4000",
            "127.0.0.1:4000",
        ] {
            assert!(!check(bad, Some("127.0.0.1:4000"), l, &[bad]), "{bad}");
        }
        // Not visible ASCII: refused, not treated as absent.
        let mut headers = HeaderMap::new();
        let obs = axum::http::HeaderValue::from_bytes(b"http://127.0.0.1:4000\xe9").unwrap();
        headers.insert(header::ORIGIN, obs);
        assert!(!allowed(&[], &headers, Some(l.parse().unwrap())));
        // No Origin at all: not a browser, allowed.
        assert!(allowed(&[], &HeaderMap::new(), Some(l.parse().unwrap())));
    }

    #[test]
    fn unusable_allow_list_entries_are_reported() {
        let list = vec!["https://ok.example".to_owned(), "ok.example".to_owned()];
        assert_eq!(unusable_entries(&list), ["ok.example"]);
    }
}
