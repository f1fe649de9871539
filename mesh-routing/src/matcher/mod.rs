//! Compiled request matchers: VirtualService `http[].match` blocks (SEMANTICS VS-2..VS-12).
//!
//! Istio reads an HTTP route's `match` list as an OR of blocks, each block an AND of
//! conditions (VS-2) on the path (`uri`, without the query string, VS-4), `scheme`, `method`,
//! `authority` (port included as sent, VS-10), `headers` / `withoutHeaders` (VS-7, VS-8),
//! `queryParams` (first occurrence, as sent, VS-9) and the destination `port` (VS-11).
//! `sourceLabels`, `sourceNamespace` and match-level `gateways` are not request conditions:
//! they decide whether a block exists for this proxy at all (VS-12, HOST-10), so they are
//! settled once, at compile time.
//!
//! Everything is compiled once per snapshot: [`StringMatcher::from_config`] turns a
//! `StringMatch` into a byte comparison or an anchored regex (VS-3; the only place a regex is
//! built), [`MatchBlock::compile`] turns an `HTTPMatchRequest` into a [`MatchBlock`]. Per
//! request, a [`RequestView`] borrows the parts a block reads, and [`MatchBlock::matches`]
//! checks it without allocating, reporting which kind of `uri` condition matched
//! ([`UriMatched`]) for `rewrite.uri` (VS-19). [`MatchBlock::explain_mismatch`] says in words
//! why a block failed, for `mesh-proxy explain`.
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use mesh_core::model::{HttpMatchRequest, Location, StringMatch};
//! use mesh_routing::matcher::{CompileContext, MatchBlock, ProxyIdentity, RequestView, UriMatched};
//!
//! // match: [{uri: {prefix: /api}, headers: {x-canary: {exact: "1"}}}]
//! let mut m = HttpMatchRequest::default();
//! m.uri = Some(StringMatch::Prefix("/api".into()));
//! m.headers.insert("x-canary".into(), StringMatch::Exact("1".into()));
//!
//! let location = Location::default();
//! let ctx = CompileContext { location: &location, resource: "VirtualService default/api" };
//! let labels = BTreeMap::new();
//! let proxy = ProxyIdentity { namespace: "default", labels: &labels };
//! let block = MatchBlock::compile(&m, &proxy, &ctx)?.expect("applies to every proxy");
//!
//! let req = http::Request::get("http://api.default/api/v1?x=1")
//!     .header("x-canary", "1")
//!     .body(())?;
//! assert_eq!(block.matches(&RequestView::new(&req, 80)), Some(UriMatched::Prefix { len: 4 }));
//!
//! let req = http::Request::get("/api/v1").body(())?;
//! let view = RequestView::new(&req, 80);
//! assert_eq!(block.matches(&view), None);
//! assert_eq!(block.explain_mismatch(&view).as_deref(), Some("header x-canary absent"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use mesh_core::model::{HttpMatchRequest, Location};

use crate::Error;

mod block;
mod request;
mod string;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use self::block::MatchBlock;
pub use self::request::RequestView;
pub use self::string::StringMatcher;

/// Where the compiled config came from, for error messages.
#[derive(Clone, Copy, Debug)]
pub struct CompileContext<'a> {
    /// Where the resource starts in its file.
    pub location: &'a Location,
    /// `Kind namespace/name` of the resource (`VirtualService prod/reviews`).
    pub resource: &'a str,
}

/// The client proxy a route table is compiled for: `sourceLabels` and `sourceNamespace` select
/// proxies, not requests (VS-12).
#[derive(Clone, Copy, Debug)]
pub struct ProxyIdentity<'a> {
    /// The proxy's namespace (`--namespace`).
    pub namespace: &'a str,
    /// The proxy's labels (`--labels`).
    pub labels: &'a BTreeMap<String, String>,
}

/// Which kind of `uri` condition matched, returned by [`MatchBlock::matches`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UriMatched {
    /// The block has no `uri` condition (or `uri: {}`).
    None,
    /// `uri.exact` matched.
    Exact,
    /// `uri.prefix` matched the first `len` bytes of the path (VS-19 replaces those).
    Prefix {
        /// Length of the matched prefix in bytes of the path.
        len: usize,
    },
    /// `uri.regex` matched the whole path.
    Regex,
}

/// The first block of `blocks` that matches `req` (the OR of VS-2): its index (for the
/// match name, LOG-2) and what its `uri` condition matched (VS-19). Does not allocate.
///
/// An **empty** slice matches nothing: a route whose every block was dropped for this proxy
/// (VS-12) must not turn into a catch-all. A route written without `match` is represented by
/// `[MatchBlock::catch_all()]`, as [`compile_route_matches`] builds it.
pub fn matches_any(blocks: &[MatchBlock], req: &RequestView<'_>) -> Option<(usize, UriMatched)> {
    blocks
        .iter()
        .enumerate()
        .find_map(|(i, b)| b.matches(req).map(|uri| (i, uri)))
}

/// Compiles a route's `match` list for `proxy`:
///
/// - `Some([catch_all])` when the list is empty: the route matches every request (VS-1);
/// - `Some(blocks)` with the blocks that apply to this proxy, in order;
/// - `None` when the list is non-empty but no block applies to this proxy (VS-12, HOST-10):
///   the route does not exist for it.
///
/// # Errors
///
/// The first error of [`MatchBlock::compile`]; every block is compiled, including the ones
/// dropped for this proxy.
pub fn compile_route_matches(
    matches: &[HttpMatchRequest],
    proxy: &ProxyIdentity<'_>,
    ctx: &CompileContext<'_>,
) -> Result<Option<Vec<MatchBlock>>, Error> {
    if matches.is_empty() {
        return Ok(Some(vec![MatchBlock::catch_all()]));
    }
    let mut blocks = Vec::with_capacity(matches.len());
    for m in matches {
        if let Some(block) = MatchBlock::compile(m, proxy, ctx)? {
            blocks.push(block);
        }
    }
    Ok((!blocks.is_empty()).then_some(blocks))
}
