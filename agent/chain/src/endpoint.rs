//! The one check of an endpoint URL (RPC, witness, quorum member, beacon, PCCS): its scheme, and
//! whether plain http stays on this machine. The URL is parsed by the parser the HTTP client uses, so
//! the host judged here is the host it connects to; prefix checks are fooled by user info
//! (`http://127.0.0.1@evil.example`), look-alike names (`http://localhost.evil.example`) and IPv6
//! literals.

use std::net::Ipv6Addr;
use url::{Host, Url};

/// How a URL reaches its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `https://` to any host.
    Https,
    /// `http://` to this machine: `localhost`, 127.0.0.0/8 or `[::1]`.
    LoopbackHttp,
    /// `http://` to any other host: anyone on the path can read and change the traffic.
    RemoteHttp,
}

/// A string that is not an http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not a URL at all.
    #[error("{url:?} is not a URL: {reason}")]
    Unparsable {
        /// The string given.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// A URL with another scheme, or without a host.
    #[error("{url:?} must be an http:// or https:// URL with a host")]
    NotHttp {
        /// The string given.
        url: String,
    },
}

/// How `url` reaches its endpoint, or why it is no http(s) URL.
pub fn transport(url: &str) -> Result<Transport, EndpointError> {
    let parsed = Url::parse(url).map_err(|e| EndpointError::Unparsable { url: url.into(), reason: e.to_string() })?;
    let not_http = || EndpointError::NotHttp { url: url.into() };
    let host = parsed.host().ok_or_else(not_http)?;
    match parsed.scheme() {
        "https" => Ok(Transport::Https),
        "http" if is_loopback(&host) => Ok(Transport::LoopbackHttp),
        "http" => Ok(Transport::RemoteHttp),
        _ => Err(not_http()),
    }
}

/// Exactly `localhost` (the parser lowercases names; `localhost.` is a DNS name, so not it), an IPv4
/// loopback address (the parser reads every IPv4 spelling), or `::1`. IPv4-mapped forms such as
/// `::ffff:127.0.0.1` are refused: nobody needs them, and what they reach depends on the socket.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => *name == "localhost",
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => *ip == Ipv6Addr::LOCALHOST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_the_host_the_client_connects_to() {
        use Transport::*;
        for (url, want) in [
            ("https://rpc.example.com", Https),
            ("HTTPS://RPC.example.com/v1?key=x", Https),
            ("https://127.0.0.1@evil.example", Https),
            ("http://127.0.0.1:8545", LoopbackHttp),
            ("http://127.1.2.3/", LoopbackHttp),
            ("http://2130706433/", LoopbackHttp), // 127.0.0.1 spelled as one number
            ("http://0x7f.1/", LoopbackHttp),
            ("http://127.0.0.1.:8545", LoopbackHttp),
            ("HTTP://LocalHost:8545", LoopbackHttp),
            ("http://[::1]:8545", LoopbackHttp),
            ("http://[0:0:0:0:0:0:0:1]/", LoopbackHttp),
            ("http://127.0.0.1@evil.example", RemoteHttp),
            ("http://127.0.0.1:8545@evil.example", RemoteHttp),
            ("http://localhost:8545@evil.example/rpc", RemoteHttp),
            ("http://127.0.0.1@evil", RemoteHttp),
            ("http://localhost.evil.example", RemoteHttp),
            ("http://localhost./", RemoteHttp),
            ("http://127.evil.example", RemoteHttp),
            ("http://127.0.0.1.evil.example", RemoteHttp),
            ("http://[::ffff:7f00:1]", RemoteHttp),
            ("http://[::ffff:127.0.0.1]", RemoteHttp),
            ("http://[2001:db8::1]:8545", RemoteHttp),
            ("http://10.0.0.1", RemoteHttp),
        ] {
            assert_eq!(transport(url), Ok(want), "{url}");
        }
        for url in ["ftp://127.0.0.1", "127.0.0.1:8545", "localhost", "file:///etc/hosts", "http://", "not a url", ""] {
            assert!(transport(url).is_err(), "{url}");
        }
    }
}
