//! Errors from compiling routing configuration.
//!
//! Request-time outcomes (no route, unknown cluster, no healthy endpoint) are not errors of
//! this type: they are facts of a [`crate::decide::Decision`] that the edge turns
//! into Envoy's local replies. This type is for configuration the router cannot use.

use mesh_core::model::Location;

/// A configuration the router cannot compile. The snapshot is rejected as a whole and the
/// last good one keeps serving (SEMANTICS RELOAD-2).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A regular expression that RE2 syntax (the `regex` crate) does not accept (VS-3).
    #[error("{location}: {resource}: invalid regex {pattern:?}: {reason}")]
    InvalidRegex {
        /// Where the resource that holds the pattern starts.
        location: Location,
        /// `Kind namespace/name` of that resource.
        resource: String,
        /// The pattern as written.
        pattern: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// A header name or value that HTTP does not allow.
    #[error("{location}: {resource}: invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// Where the resource that holds the header starts.
        location: Location,
        /// `Kind namespace/name` of that resource.
        resource: String,
        /// The header name as written.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A `StringMatch` type this version cannot evaluate (`mesh-core` knows more match types
    /// than the matcher compiles).
    #[error("{location}: {resource}: unsupported string match type {match_type:?}")]
    UnsupportedMatch {
        /// Where the resource that holds the match starts.
        location: Location,
        /// `Kind namespace/name` of that resource.
        resource: String,
        /// The YAML key of the match type.
        match_type: String,
    },
}
