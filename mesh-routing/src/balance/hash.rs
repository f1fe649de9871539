//! Request hash keys for consistent hashing (SEMANTICS DR-9, DR-10): [`hash_bytes`],
//! [`HashPolicy`], [`HashKey`] and the affinity cookie a proxy issues ([`IssuedCookie`]).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::{COOKIE, HeaderMap, HeaderName, HeaderValue};
use mesh_core::model::ConsistentHashLb;
use mesh_core::random::Random;

// === hash function ===

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over the bytes written, finished by murmur3's `fmix64` so that keys differing
/// only in their last bytes still land far apart on a ring.
#[derive(Clone, Copy, Debug)]
pub(super) struct Hasher(u64);

impl Hasher {
    /// A hasher whose output is independent of one with another `seed` (maglev needs two
    /// hashes of the same endpoint).
    pub(super) fn seeded(seed: u64) -> Self {
        Self(FNV_OFFSET ^ fmix64(seed))
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// Writes `n` in decimal, without allocating.
    pub(super) fn write_decimal(&mut self, mut n: u64) {
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        loop {
            at -= 1;
            // `n % 10` is a digit; the truncation is exact.
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.write(&buf[at..]);
    }

    pub(super) fn finish(self) -> u64 {
        fmix64(self.0)
    }
}

/// murmur3's 64-bit finaliser: a bijection with full avalanche.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The balancers' 64-bit hash: FNV-1a 64 followed by murmur3's `fmix64` finaliser.
///
/// SEMANTICS DR-10 lets us choose the function (Envoy uses xxHash64; the distribution is the
/// contract, not equality with Envoy). This one is fixed forever: the same bytes give the same
/// hash in every process, on every platform and in every version of this crate, so a key keeps
/// its endpoint across restarts and across proxies.
///
/// ```
/// use mesh_routing::balance::hash_bytes;
/// assert_eq!(hash_bytes(b"user-1"), hash_bytes(b"user-1"));
/// assert_ne!(hash_bytes(b"user-1"), hash_bytes(b"user-2"));
/// ```
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = Hasher(FNV_OFFSET);
    h.write(bytes);
    h.finish()
}

// === HashPolicy ===

/// What a request is hashed on: the one hash key of a `consistentHash` block (SEMANTICS DR-9),
/// compiled once.
///
/// - `httpHeaderName` → the header's value (several lines of it: their values sorted, then
///   hashed together, as Envoy does);
/// - `httpCookie` → the cookie's value (surrounding double quotes removed); absent with a
///   `ttl` → a new cookie is issued ([`HashKey::IssueCookie`]);
/// - `useSourceIp: true` → the peer's IP address (IPv4-mapped IPv6 counts as IPv4);
/// - `httpQueryParameterName` → the first value of that parameter, as sent (not
///   percent-decoded; a bare `?u` has the empty value).
///
/// ```
/// use mesh_core::model::ConsistentHashLb;
/// use mesh_core::random::Random;
/// use mesh_routing::balance::{HashKey, HashPolicy, hash_bytes};
///
/// let mut config = ConsistentHashLb::default();
/// config.http_header_name = Some("x-user".into());
/// let policy = HashPolicy::from_config(&config).expect("a hash key is set");
///
/// let mut headers = http::HeaderMap::new();
/// let mut rng = Random::seeded(1);
/// assert!(matches!(policy.key(&headers, None, None, &mut rng), HashKey::Missing));
/// headers.insert("x-user", "alice".parse()?);
/// assert_eq!(policy.key(&headers, None, None, &mut rng).hash(), Some(hash_bytes(b"alice")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct HashPolicy {
    source: KeyFrom,
}

#[derive(Clone, Debug)]
enum KeyFrom {
    /// `None`: the configured name is not a valid header name, so no request carries it.
    Header(Option<HeaderName>),
    Cookie(Arc<CookieSpec>),
    SourceIp,
    QueryParameter(Box<str>),
}

/// A compiled `httpCookie`.
#[derive(Debug)]
struct CookieSpec {
    name: Box<str>,
    path: Box<str>,
    /// `None`: never issue. `Some(0)`: issue a session cookie (no `Max-Age`).
    ttl_secs: Option<u64>,
    attributes: Box<[(Box<str>, Box<str>)]>,
}

impl HashPolicy {
    /// The hash key of a `consistentHash` block, or `None` when it names none (then every
    /// request is balanced at random, as a missing key is).
    ///
    /// Validation rejects several keys at once; if several are set anyway, the first in the
    /// protobuf's order wins: header, cookie, source IP, query parameter.
    pub fn from_config(config: &ConsistentHashLb) -> Option<Self> {
        let source = if let Some(name) = &config.http_header_name {
            KeyFrom::Header(HeaderName::from_bytes(name.as_bytes()).ok())
        } else if let Some(cookie) = &config.http_cookie {
            KeyFrom::Cookie(Arc::new(CookieSpec {
                name: cookie.name.as_str().into(),
                path: cookie.path.as_str().into(),
                ttl_secs: cookie.ttl.map(|d| d.as_std().as_secs()),
                attributes: cookie
                    .attributes
                    .iter()
                    .map(|a| (a.name.as_str().into(), a.value.as_str().into()))
                    .collect(),
            }))
        } else if config.use_source_ip == Some(true) {
            KeyFrom::SourceIp
        } else if let Some(name) = &config.http_query_parameter_name {
            KeyFrom::QueryParameter(name.as_str().into())
        } else {
            return None;
        };
        Some(Self { source })
    }

    /// The request's hash key (SEMANTICS DR-9): `headers` are the request headers, `query`
    /// the query string without `?` (`uri.query()`), `source_ip` the downstream peer.
    ///
    /// `rng` is only drawn from to generate a cookie value ([`HashKey::IssueCookie`]).
    /// Allocates nothing unless a header has several lines or a cookie is issued.
    pub fn key(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        source_ip: Option<IpAddr>,
        rng: &mut Random,
    ) -> HashKey {
        match &self.source {
            KeyFrom::Header(None) => HashKey::Missing,
            KeyFrom::Header(Some(name)) => header_hash(headers, name),
            KeyFrom::Cookie(spec) => match find_cookie(headers, spec.name.as_bytes()) {
                Some(value) => HashKey::Hash(hash_bytes(value)),
                None if spec.ttl_secs.is_some() => {
                    let value = format!("{:016x}", rng.next_u64());
                    HashKey::IssueCookie(IssuedCookie {
                        hash: hash_bytes(value.as_bytes()),
                        value,
                        spec: Arc::clone(spec),
                    })
                }
                None => HashKey::Missing,
            },
            KeyFrom::SourceIp => match source_ip.map(|ip| ip.to_canonical()) {
                Some(IpAddr::V4(ip)) => HashKey::Hash(hash_bytes(&ip.octets())),
                Some(IpAddr::V6(ip)) => HashKey::Hash(hash_bytes(&ip.octets())),
                None => HashKey::Missing,
            },
            KeyFrom::QueryParameter(name) => query
                .and_then(|q| first_query_value(q, name))
                .map_or(HashKey::Missing, |v| {
                    HashKey::Hash(hash_bytes(v.as_bytes()))
                }),
        }
    }

    /// What the key is taken from, for `explain`: `header x-user`, `cookie session`,
    /// `source ip`, `query parameter u`.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for HashPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            KeyFrom::Header(Some(name)) => write!(f, "header {name}"),
            KeyFrom::Header(None) => f.write_str("header (invalid name)"),
            KeyFrom::Cookie(spec) => write!(f, "cookie {}", spec.name),
            KeyFrom::SourceIp => f.write_str("source ip"),
            KeyFrom::QueryParameter(name) => write!(f, "query parameter {name}"),
        }
    }
}

fn header_hash(headers: &HeaderMap, name: &HeaderName) -> HashKey {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return HashKey::Missing;
    };
    let Some(second) = values.next() else {
        return HashKey::Hash(hash_bytes(first.as_bytes()));
    };
    // Several lines: order must not matter, so sort them, then hash them with a separator.
    let mut all: Vec<&[u8]> = vec![first.as_bytes(), second.as_bytes()];
    all.extend(values.map(HeaderValue::as_bytes));
    all.sort_unstable();
    let mut h = Hasher(FNV_OFFSET);
    for (i, v) in all.iter().enumerate() {
        if i > 0 {
            h.write(b"\0");
        }
        h.write(v);
    }
    HashKey::Hash(h.finish())
}

/// The value of the first cookie called `name` over every `cookie` header line
/// (`a=1; b=2`), without surrounding double quotes. Pairs without `=` are skipped.
fn find_cookie<'h>(headers: &'h HeaderMap, name: &[u8]) -> Option<&'h [u8]> {
    headers.get_all(COOKIE).iter().find_map(|line| {
        line.as_bytes().split(|&b| b == b';').find_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name).then(|| unquote(pair[eq + 1..].trim_ascii()))
        })
    })
}

fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// The first value of parameter `name` in `query` (`a=1&u=2`), as sent.
fn first_query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k == name).then_some(v),
            None => (pair == name && !pair.is_empty()).then_some(""),
        })
}

// === HashKey ===

/// What a request yields for a [`HashPolicy`] (SEMANTICS DR-9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    /// The key was present: balance on this hash.
    Hash(u64),
    /// The key is absent (no header, no cookie without `ttl`, no query parameter, no peer
    /// address): pick an endpoint at random for this request.
    Missing,
    /// The affinity cookie is absent and has a `ttl`: balance on the hash of a freshly
    /// generated value and send the cookie back with the response.
    IssueCookie(IssuedCookie),
}

impl HashKey {
    /// The hash to hand to [`super::LoadBalancer::pick`]; `None` = random choice.
    pub fn hash(&self) -> Option<u64> {
        match self {
            HashKey::Hash(h) => Some(*h),
            HashKey::Missing => None,
            HashKey::IssueCookie(c) => Some(c.hash),
        }
    }
}

/// An affinity cookie the proxy issues: its value, that value's hash, and the `set-cookie`
/// header to add to the response.
#[derive(Clone)]
pub struct IssuedCookie {
    hash: u64,
    value: String,
    spec: Arc<CookieSpec>,
}

impl IssuedCookie {
    /// Hash of the generated value (what later requests carrying the cookie hash to).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The generated value: 16 lowercase hex digits.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `set-cookie` text: `NAME=VALUE; Max-Age=TTL_SECS; Path=PATH; HttpOnly`, then each
    /// configured attribute as `; name=value` (or `; name` when it has no value). `Max-Age` is
    /// left out for a `ttl` under one second (`0s` = session cookie), `Path` when it is empty.
    pub fn set_cookie_string(&self) -> String {
        let spec = &self.spec;
        let mut out = format!("{}={}", spec.name, self.value);
        if let Some(secs) = spec.ttl_secs.filter(|&s| s > 0) {
            out.push_str("; Max-Age=");
            out.push_str(&secs.to_string());
        }
        if !spec.path.is_empty() {
            out.push_str("; Path=");
            out.push_str(&spec.path);
        }
        out.push_str("; HttpOnly");
        for (name, value) in &spec.attributes {
            out.push_str("; ");
            out.push_str(name);
            if !value.is_empty() {
                out.push('=');
                out.push_str(value);
            }
        }
        out
    }

    /// [`Self::set_cookie_string`] as a header value for `set-cookie`; `None` only when the
    /// configured name, path or attributes hold bytes a header value cannot carry.
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        HeaderValue::try_from(self.set_cookie_string()).ok()
    }
}

impl fmt::Debug for IssuedCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCookie")
            .field("name", &self.spec.name)
            .field("value", &self.value)
            .field("hash", &self.hash)
            .finish()
    }
}

impl PartialEq for IssuedCookie {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.value == other.value && self.spec.name == other.spec.name
    }
}

impl Eq for IssuedCookie {}
