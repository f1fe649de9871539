//! Request and response header edits of a route (SEMANTICS VS-25, VS-26).
//!
//! Istio's `headers.request` / `headers.response` have `set` (overwrite), `add` (append) and
//! `remove`, at route level and per weighted destination. How the two levels combine depends on
//! how many destinations the route has (VS-25, a pitfall):
//!
//! - **one destination**: one level — every `remove` first, then route `set`, route `add`,
//!   destination `set`, destination `add`: the destination's `set` wins;
//! - **several destinations**: the destination's edits run first (`remove`, `set`, `add`), then
//!   the route's: the route's `set` wins, and a route `remove` deletes what the destination added.
//!
//! Each destination gets its own [`HeaderEdits`] plan, compiled once per snapshot with parsed
//! header names and values, so applying it allocates only what the `HeaderMap` itself needs.
//! Pseudo-headers and hop-by-hop headers are never touched (VS-26); `set`/`add` of `host` or
//! `:authority` become an authority rewrite ([`HeaderEdits::authority`]), `set` winning.
//!
//! ```
//! use mesh_core::model::{HeaderOperations, Headers};
//! use mesh_routing::headers::HeaderEdits;
//!
//! let mut route = HeaderOperations::default();
//! route.set.insert("x-env".into(), "route".into());
//! let mut dest = HeaderOperations::default();
//! dest.set.insert("x-env".into(), "dest".into());
//! let (req, _) = HeaderEdits::plan(Some(&route), Some(&dest), None, None, true).unwrap();
//! let mut headers = http::HeaderMap::new();
//! req.apply(&mut headers);
//! assert_eq!(headers["x-env"], "dest"); // one destination: the destination's set wins
//! ```

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, uri::Authority};
use mesh_core::model::HeaderOperations;

/// One header operation.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Remove(HeaderName),
    Set(HeaderName, HeaderValue),
    Add(HeaderName, HeaderValue),
}

/// A compiled, ordered list of header edits for one direction of one destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    ops: Vec<Op>,
    authority: Option<Authority>,
}

/// A header name or value in config that HTTP does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidHeader {
    /// The name as written.
    pub name: String,
    /// Why it is invalid.
    pub reason: String,
}

/// Headers that edits never touch (VS-26): hop-by-hop headers; pseudo-headers cannot be named.
fn is_protected(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "content-length"
    )
}

fn is_authority(name: &str) -> bool {
    name == "host" || name == ":authority"
}

impl HeaderEdits {
    /// Compiles the request and response plans of one destination from the route's and the
    /// destination's `headers` (VS-25). `single` says whether the route has exactly one
    /// destination. Returns `(request, response)`.
    pub fn plan(
        route_request: Option<&HeaderOperations>,
        dest_request: Option<&HeaderOperations>,
        route_response: Option<&HeaderOperations>,
        dest_response: Option<&HeaderOperations>,
        single: bool,
    ) -> Result<(HeaderEdits, HeaderEdits), InvalidHeader> {
        Ok((
            Self::combine(route_request, dest_request, single)?,
            Self::combine(route_response, dest_response, single)?,
        ))
    }

    /// Edits of one level only (a route without destinations: redirect, direct response).
    pub fn single_level(ops: Option<&HeaderOperations>) -> Result<HeaderEdits, InvalidHeader> {
        Self::combine(ops, None, true)
    }

    fn combine(
        route: Option<&HeaderOperations>,
        dest: Option<&HeaderOperations>,
        single: bool,
    ) -> Result<HeaderEdits, InvalidHeader> {
        let mut edits = HeaderEdits::default();
        // Authority from `host`: a `set` beats an `add`; the later level's `set` wins like any
        // other set of the same name in the chosen order.
        let levels: [Option<&HeaderOperations>; 2] =
            if single { [route, dest] } else { [dest, route] };
        if single {
            for ops in levels.iter().flatten() {
                edits.push_removes(ops)?;
            }
            for ops in levels.iter().flatten() {
                edits.push_sets_and_adds(ops)?;
            }
        } else {
            for ops in levels.iter().flatten() {
                edits.push_removes(ops)?;
                edits.push_sets_and_adds(ops)?;
            }
        }
        Ok(edits)
    }

    fn push_removes(&mut self, ops: &HeaderOperations) -> Result<(), InvalidHeader> {
        for name in &ops.remove {
            let lower = name.to_ascii_lowercase();
            if is_protected(&lower) || is_authority(&lower) {
                continue;
            }
            self.ops.push(Op::Remove(parse_name(name)?));
        }
        Ok(())
    }

    fn push_sets_and_adds(&mut self, ops: &HeaderOperations) -> Result<(), InvalidHeader> {
        let mut add_authority = None;
        for (name, value) in &ops.set {
            let lower = name.to_ascii_lowercase();
            if is_authority(&lower) {
                self.authority = Some(parse_authority(name, value)?);
                continue;
            }
            if is_protected(&lower) {
                continue;
            }
            self.ops
                .push(Op::Set(parse_name(name)?, parse_value(name, value)?));
        }
        for (name, value) in &ops.add {
            let lower = name.to_ascii_lowercase();
            if is_authority(&lower) {
                add_authority = Some(parse_authority(name, value)?);
                continue;
            }
            if is_protected(&lower) {
                continue;
            }
            self.ops
                .push(Op::Add(parse_name(name)?, parse_value(name, value)?));
        }
        if self.authority.is_none() {
            self.authority = add_authority;
        }
        Ok(())
    }

    /// Applies the edits in order.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for op in &self.ops {
            match op {
                Op::Remove(name) => {
                    headers.remove(name);
                }
                Op::Set(name, value) => {
                    headers.insert(name.clone(), value.clone());
                }
                Op::Add(name, value) => {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
    }

    /// The authority set through a `host` / `:authority` edit, if any (VS-25, VS-26).
    pub fn authority(&self) -> Option<&Authority> {
        self.authority.as_ref()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.authority.is_none()
    }

    /// A short human description of each edit, in order (for `explain`).
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .ops
            .iter()
            .map(|op| match op {
                Op::Remove(n) => format!("remove {n}"),
                Op::Set(n, v) => format!("set {n}: {}", String::from_utf8_lossy(v.as_bytes())),
                Op::Add(n, v) => format!("add {n}: {}", String::from_utf8_lossy(v.as_bytes())),
            })
            .collect();
        if let Some(a) = &self.authority {
            out.push(format!("authority {a}"));
        }
        out
    }
}

fn parse_name(name: &str) -> Result<HeaderName, InvalidHeader> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|e| InvalidHeader {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

fn parse_value(name: &str, value: &str) -> Result<HeaderValue, InvalidHeader> {
    HeaderValue::from_str(value).map_err(|e| InvalidHeader {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

fn parse_authority(name: &str, value: &str) -> Result<Authority, InvalidHeader> {
    Authority::try_from(value).map_err(|e| InvalidHeader {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderOperations {
        let mut o = HeaderOperations::default();
        o.set = set
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        o.add = add
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        o.remove = remove.iter().map(|s| (*s).into()).collect();
        o
    }

    fn values(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn one_destination_dest_set_wins() {
        // SEMANTICS VS-25 (pitfall): one destination → one level, destination set last.
        let route = ops(&[("x-env", "route")], &[], &[]);
        let dest = ops(&[("x-env", "dest")], &[("x-tag", "d")], &[]);
        let (req, _) = HeaderEdits::plan(Some(&route), Some(&dest), None, None, true).unwrap();
        let mut h = HeaderMap::new();
        req.apply(&mut h);
        assert_eq!(values(&h, "x-env"), ["dest"]);
        assert_eq!(values(&h, "x-tag"), ["d"]);
    }

    #[test]
    fn several_destinations_route_set_wins() {
        // SEMANTICS VS-25 (pitfall): several destinations → destination first, route after.
        let route = ops(&[("x-env", "route")], &[], &[]);
        let dest = ops(&[("x-env", "dest")], &[("x-tag", "d")], &[]);
        let (req, _) = HeaderEdits::plan(Some(&route), Some(&dest), None, None, false).unwrap();
        let mut h = HeaderMap::new();
        req.apply(&mut h);
        assert_eq!(values(&h, "x-env"), ["route"]);
        assert_eq!(values(&h, "x-tag"), ["d"]);
    }

    #[test]
    fn route_remove_and_destination_add_depend_on_count() {
        // SEMANTICS VS-25: a route remove never deletes what a single destination adds, but
        // deletes it with several destinations.
        let route = ops(&[], &[], &["x-tag"]);
        let dest = ops(&[], &[("x-tag", "d")], &[]);
        let (one, _) = HeaderEdits::plan(Some(&route), Some(&dest), None, None, true).unwrap();
        let (many, _) = HeaderEdits::plan(Some(&route), Some(&dest), None, None, false).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-tag", HeaderValue::from_static("orig"));
        let mut h2 = h.clone();
        one.apply(&mut h);
        many.apply(&mut h2);
        assert_eq!(values(&h, "x-tag"), ["d"]);
        assert!(values(&h2, "x-tag").is_empty());
    }

    #[test]
    fn set_add_remove_basics_and_protected_headers() {
        // SEMANTICS VS-25, VS-26
        let o = ops(
            &[("x-a", "1"), ("connection", "close")],
            &[("x-b", "2")],
            &["x-c", "transfer-encoding"],
        );
        let e = HeaderEdits::single_level(Some(&o)).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("0"));
        h.insert("x-b", HeaderValue::from_static("1"));
        h.insert("x-c", HeaderValue::from_static("gone"));
        e.apply(&mut h);
        assert_eq!(values(&h, "x-a"), ["1"]);
        assert_eq!(values(&h, "x-b"), ["1", "2"]);
        assert!(h.get("x-c").is_none());
        assert!(h.get("connection").is_none());
    }

    #[test]
    fn host_edits_are_authority_rewrites_set_over_add() {
        // SEMANTICS VS-25: set/add of host is an authority rewrite, set winning over add.
        let o = ops(
            &[("host", "a.example.com")],
            &[("host", "b.example.com")],
            &[],
        );
        let e = HeaderEdits::single_level(Some(&o)).unwrap();
        assert_eq!(e.authority().unwrap().as_str(), "a.example.com");
        let o = ops(&[], &[("Host", "b.example.com")], &[]);
        let e = HeaderEdits::single_level(Some(&o)).unwrap();
        assert_eq!(e.authority().unwrap().as_str(), "b.example.com");
    }

    #[test]
    fn invalid_values_are_errors() {
        let o = ops(&[("x-a", "bad\nvalue")], &[], &[]);
        assert!(HeaderEdits::single_level(Some(&o)).is_err());
        let o = ops(&[("bad name", "v")], &[], &[]);
        assert!(HeaderEdits::single_level(Some(&o)).is_err());
    }
}
