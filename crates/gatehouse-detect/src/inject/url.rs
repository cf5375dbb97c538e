//! SSRF checks for URL arguments. Two parsers read every URL: the WHATWG URL Standard's
//! (the `url` crate: what Node's fetch and browsers connect to) and a lenient one that
//! splits the way naive clients do (percent-decoded, the last `@` ends the user info, no
//! backslash-as-slash). A URL is refused when either finds an internal host, or when the
//! two disagree on the host: a parser differential is how `http://127.0.0.1\@evil.com/`
//! passes one check and reaches loopback through another client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Injection, decode, found};

/// Whether an address is one a tool must never be sent to: every range the IANA
/// special-purpose registries mark as not globally reachable (loopback, private, shared,
/// link-local where cloud metadata lives, documentation, benchmarking, reserved,
/// multicast), and IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64,
/// 6to4, Teredo) when the address they carry is internal.
pub fn internal_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => internal_v4(v),
        IpAddr::V6(v) => internal_v6(v),
    }
}

/// IPv4 special-purpose ranges (RFC 6890 and the IANA registry) that are not global.
const V4_RANGES: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (cloud metadata)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the limited broadcast address
];

fn internal_v4(v: Ipv4Addr) -> bool {
    let a = u32::from(v);
    V4_RANGES.iter().any(|(net, len)| {
        let mask = u32::MAX << (32 - u32::from(*len));
        a & mask == u32::from_be_bytes(*net) & mask
    })
}

/// IPv6 special-purpose ranges that are never global, as (prefix, length).
const V6_RANGES: &[(u128, u8)] = &[
    (0x0064_ff9b_0001 << 80, 48), // local-use NAT64 (RFC 8215)
    (0x0100 << 112, 64),          // discard-only
    (0x2001 << 112, 23),          // IETF protocol assignments (Teredo, ORCHID, …)
    (0x2001_0db8 << 96, 32),      // documentation
    (0x3fff << 112, 20),          // documentation (RFC 9637)
    (0x5f00 << 112, 16),          // segment routing SIDs
    (0xfc00 << 112, 7),           // unique local (fd00:ec2::254 is a metadata address)
    (0xfe80 << 112, 10),          // link-local
    (0xfec0 << 112, 10),          // site-local (deprecated)
    (0xff00 << 112, 8),           // multicast
];

fn internal_v6(v: Ipv6Addr) -> bool {
    let a = u128::from(v);
    let low32 = Ipv4Addr::from(a as u32);
    // Forms that carry an IPv4 address: judged by the address they carry.
    if a >> 32 == 0xffff // IPv4-mapped ::ffff:a.b.c.d
        || a >> 32 == 0xffff_0000 // IPv4-translated ::ffff:0:a.b.c.d (SIIT)
        || a >> 32 == 0x0064_ff9b_0000_0000_0000_0000
    // well-known NAT64 64:ff9b::/96
    {
        return internal_v4(low32);
    }
    // `::`, `::1` and the deprecated IPv4-compatible ::a.b.c.d: never a real destination.
    if a >> 32 == 0 {
        return true;
    }
    // 6to4 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if a >> 112 == 0x2002 {
        return internal_v4(Ipv4Addr::from((a >> 80) as u32));
    }
    V6_RANGES.iter().any(|(net, len)| {
        let mask = u128::MAX << (128 - u32::from(*len));
        a & mask == net & mask
    })
}

/// IPv4 as browsers and libc accept it: `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`.
fn loose_ipv4(host: &str) -> Option<Ipv4Addr> {
    let parse = |p: &str| -> Option<u64> {
        if p.len() > 16 {
            return None;
        }
        if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if h.is_empty() {
                return Some(0);
            }
            u64::from_str_radix(h, 16).ok()
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let parts: Vec<u64> = host.split('.').map(parse).collect::<Option<_>>()?;
    let v = match parts.as_slice() {
        [a] => *a,
        [a, b] if *b < 1 << 24 => (a << 24) | b,
        [a, b, c] if *b < 256 && *c < 1 << 16 => (a << 24) | (b << 16) | c,
        [a, b, c, d] if *b < 256 && *c < 256 && *d < 256 => (a << 24) | (b << 16) | (c << 8) | d,
        _ => return None,
    };
    u32::try_from(v).ok().map(Ipv4Addr::from)
}

const INTERNAL_NAMES: &[&str] = &[
    "localhost",
    "metadata.google.internal",
    "metadata",
    "instance-data",
];

/// A host as both parsers see it, normalised for comparison.
#[derive(Debug, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    /// ASCII (IDNA-mapped), lower case, no trailing dot.
    Name(String),
}

impl Host {
    /// Normalises a host string the way the WHATWG host parser does (percent-decoding,
    /// IDNA mapping: full-width digits, ideographic full stops), then reads the IPv4 forms
    /// libc also accepts. `None` for a host no parser would accept.
    fn normalise(raw: &str) -> Option<Host> {
        if let Some(v6) = raw.strip_prefix('[') {
            return v6
                .strip_suffix(']')?
                .parse::<Ipv6Addr>()
                .ok()
                .map(|v| Host::Ip(IpAddr::V6(v)));
        }
        match ::url::Host::parse(raw).ok()? {
            ::url::Host::Ipv4(v) => Some(Host::Ip(IpAddr::V4(v))),
            ::url::Host::Ipv6(v) => Some(Host::Ip(IpAddr::V6(v))),
            ::url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                Some(match loose_ipv4(&d) {
                    Some(v) => Host::Ip(IpAddr::V4(v)),
                    None => Host::Name(d),
                })
            }
        }
    }

    fn internal(&self) -> Option<Injection> {
        match self {
            Host::Ip(ip) if internal_address(*ip) => found("ssrf.private", format!("address {ip}")),
            Host::Ip(_) => None,
            Host::Name(h) => (INTERNAL_NAMES.contains(&h.as_str())
                || h.ends_with(".localhost")
                || h.ends_with(".internal")
                || h.ends_with(".local"))
            .then(|| Injection {
                rule: "ssrf.internal",
                detail: format!("host `{h}`"),
            }),
        }
    }

    fn render(&self) -> String {
        match self {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(n) => n.clone(),
        }
    }
}

/// The host the WHATWG parser finds, or why there is none.
fn whatwg(u: &str) -> Result<(::url::Url, Host), Injection> {
    let parsed = ::url::Url::parse(u).map_err(|e| Injection {
        rule: "ssrf.unparsable",
        detail: format!("not a valid URL ({e})"),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Injection {
            rule: "ssrf.scheme",
            detail: format!("scheme `{}`", parsed.scheme()),
        });
    }
    let host = match parsed.host() {
        Some(::url::Host::Ipv4(v)) => Host::Ip(IpAddr::V4(v)),
        Some(::url::Host::Ipv6(v)) => Host::Ip(IpAddr::V6(v)),
        Some(::url::Host::Domain(d)) => Host::Name(d.trim_end_matches('.').to_ascii_lowercase()),
        None => {
            return Err(Injection {
                rule: "ssrf.host",
                detail: "no host".into(),
            });
        }
    };
    Ok((parsed, host))
}

/// The host the lenient parser finds: percent-decoded (repeatedly), split at `://`, the
/// authority ends at the first `/`, `?` or `#`, the user info at its last `@`.
fn lenient(u: &str) -> Result<Host, Injection> {
    let decoded = decode(u.trim());
    let Some((scheme, rest)) = decoded.split_once("://") else {
        return Err(Injection {
            rule: "ssrf.scheme",
            detail: "not an absolute URL".into(),
        });
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(Injection {
            rule: "ssrf.scheme",
            detail: format!("scheme `{scheme}`"),
        });
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if host_port.starts_with('[') {
        host_port
            .find(']')
            .map_or(host_port, |end| &host_port[..=end])
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(Injection {
            rule: "ssrf.host",
            detail: "no host".into(),
        });
    }
    Host::normalise(host).ok_or_else(|| Injection {
        rule: "ssrf.unparsable",
        detail: format!("host `{host}` is not a valid host"),
    })
}

/// How many URLs inside URLs (`?next=http://…?url=…`) are followed; deeper nesting is
/// refused, so a long chain costs bounded stack and time.
const MAX_NESTED: usize = 4;

pub(super) fn url(u: &str) -> Option<Injection> {
    url_at(u, 0)
}

fn url_at(u: &str, depth: usize) -> Option<Injection> {
    if depth > MAX_NESTED {
        return found("ssrf.redirect", "URLs nested inside URLs too deeply");
    }
    let (parsed, standard) = match whatwg(u) {
        Ok(v) => v,
        Err(e) => return Some(e),
    };
    if let Some(bad) = standard.internal() {
        return Some(bad);
    }
    let naive = match lenient(u) {
        Ok(h) => h,
        Err(e) => return Some(e),
    };
    if let Some(bad) = naive.internal() {
        return Some(bad);
    }
    if naive != standard {
        return found(
            "ssrf.ambiguous",
            format!(
                "parsers disagree on the host (`{}` or `{}`)",
                standard.render(),
                naive.render()
            ),
        );
    }
    // An open redirector or proxy carrying its target in the query (`?url=http://169.254…`).
    for (_, value) in parsed.query_pairs() {
        let value = decode(&value);
        if let Some(at) = value.find("://") {
            let start = value[..at]
                .rfind(|c: char| !c.is_ascii_alphanumeric())
                .map_or(0, |i| i + 1);
            if let Some(inner) = url_at(&value[start..], depth + 1)
                && !matches!(inner.rule, "ssrf.scheme" | "ssrf.unparsable")
            {
                return found(
                    "ssrf.redirect",
                    format!("a URL inside the query: {}", inner.detail),
                );
            }
        }
    }
    None
}

/// The host of an http(s) URL as the WHATWG parser reads it (what a client connects to),
/// for resolving: the proxy checks what it resolves to. `None` for an IP address.
pub fn url_host(u: &str) -> Option<String> {
    match whatwg(u).ok()?.1 {
        Host::Name(n) => Some(n),
        Host::Ip(_) => None,
    }
}
