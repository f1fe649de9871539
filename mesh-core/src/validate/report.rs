//! Collecting findings while the checks run, and placing them at their fields afterwards.
//!
//! Checks name the offending field by path (`spec.http[0].route[1].weight`); the positions are
//! looked up only once all checks have run, so each file is read once per analysis and not at
//! all when a resource has no finding.

use super::codes::CodeInfo;
use super::findings::Finding;
use super::source_map::SourceMap;
use crate::model::{AnyResource, Location};

/// A finding before its position is known.
#[derive(Debug)]
struct Raw<'s> {
    code: &'static CodeInfo,
    start: &'s Location,
    path: String,
    resource: String,
    message: String,
}

/// The findings of one analysis.
#[derive(Debug, Default)]
pub(crate) struct Reporter<'s> {
    raw: Vec<Raw<'s>>,
}

impl<'s> Reporter<'s> {
    /// A finding about `resource` at field `path` (empty for the resource itself).
    pub(crate) fn add(
        &mut self,
        code: &'static CodeInfo,
        resource: &'s AnyResource,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.raw.push(Raw {
            code,
            start: resource.source(),
            path: path.into(),
            resource: resource.key(),
            message: message.into(),
        });
    }

    /// Checks of one resource report through this.
    pub(crate) fn on<'r>(&'r mut self, resource: &'s AnyResource) -> On<'r, 's> {
        On {
            reporter: self,
            resource,
        }
    }

    /// The findings whose code `keep` accepts, at their fields, in `analyze` order.
    pub(crate) fn finish(
        self,
        sources: &mut SourceMap,
        keep: impl Fn(&CodeInfo) -> bool,
    ) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .raw
            .into_iter()
            .filter(|r| keep(r.code))
            .map(|r| {
                let location = sources.locate(r.start, &r.path);
                Finding::from_code(r.code, r.message, location, Some(r.resource))
            })
            .collect();
        out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        out.dedup();
        out
    }
}

/// The reporter, bound to one resource.
#[derive(Debug)]
pub(crate) struct On<'r, 's> {
    reporter: &'r mut Reporter<'s>,
    resource: &'s AnyResource,
}

impl On<'_, '_> {
    /// A finding at field `path` of the resource.
    pub(crate) fn add(
        &mut self,
        code: &'static CodeInfo,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.reporter.add(code, self.resource, path, message);
    }

    /// The resource's namespace.
    pub(crate) fn namespace(&self) -> &str {
        self.resource.namespace()
    }
}
