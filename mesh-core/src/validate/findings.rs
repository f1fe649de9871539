//! What `analyze` reports: [`Finding`]s with a [`Severity`], a stable code and the file, line and
//! column of the offending field.

use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::codes::CodeInfo;
use crate::model::Location;

/// How bad a finding is.
///
/// `Display` and JSON use the upper-case names `ERROR`, `WARNING`, `INFO`, as the text output
/// of `analyze` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(
    clippy::exhaustive_enums,
    reason = "three levels, as in istioctl analyze"
)]
pub enum Severity {
    /// The configuration is wrong: Istio would reject it, or it cannot work. A reload with an
    /// error is refused and `analyze` exits 1.
    Error,
    /// The configuration is accepted but probably does not do what was meant.
    Warning,
    /// Worth knowing; nothing is wrong.
    Info,
}

impl Severity {
    /// `ERROR`, `WARNING` or `INFO`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One problem (or remark) about the configuration, at the field it concerns.
///
/// `Display` is the line `analyze` prints, `SEVERITY CODE FILE:LINE: message`:
///
/// ```
/// use mesh_core::model::Location;
/// use mesh_core::validate::{Finding, Severity};
///
/// let finding = Finding::new(
///     Severity::Error,
///     "MESH0101",
///     "subset \"v3\" is not defined in any DestinationRule for reviews.default.svc.cluster.local",
///     Location::new("mesh/reviews.yaml", 12, 17),
///     Some("VirtualService/default/reviews".into()),
/// );
/// assert_eq!(
///     finding.to_string(),
///     "ERROR MESH0101 mesh/reviews.yaml:12: subset \"v3\" is not defined in any \
///      DestinationRule for reviews.default.svc.cluster.local",
/// );
/// let json = serde_json::to_value(&finding).unwrap();
/// assert_eq!(json["severity"], "ERROR");
/// assert_eq!(json["column"], 17);
/// ```
///
/// JSON (`analyze -o json`) is an object with the keys `severity` (upper case, as in the
/// text), `code`, `file`, `line`, `column`, `resource` (`Kind/namespace/name`, or null) and
/// `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// How bad it is (always the severity of the code).
    pub severity: Severity,
    /// The stable code, `MESHnnnn` (see [`super::CODES`]).
    pub code: &'static str,
    /// What is wrong and, where it helps, what to do; one line, no location.
    pub message: String,
    /// The file, line and column of the offending field (or of the resource when the field is
    /// absent).
    pub location: Location,
    /// The resource concerned, `Kind/namespace/name`; `None` for findings about a file.
    pub resource: Option<String>,
}

impl Finding {
    /// A finding; see [`Finding::from_code`] to take code and severity from the code table.
    pub fn new(
        severity: Severity,
        code: &'static str,
        message: impl Into<String>,
        location: Location,
        resource: Option<String>,
    ) -> Self {
        Self {
            severity,
            code,
            message: message.into(),
            location,
            resource,
        }
    }

    /// A finding with `code`'s code and severity.
    pub fn from_code(
        code: &'static CodeInfo,
        message: impl Into<String>,
        location: Location,
        resource: Option<String>,
    ) -> Self {
        Self::new(code.severity, code.code, message, location, resource)
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The order `analyze` prints findings in: file, line, code, then column and message.
    pub(crate) fn sort_key(&self) -> (&std::path::Path, u32, &'static str, u32, &str) {
        (
            &self.location.file,
            self.location.line,
            self.code,
            self.location.column,
            &self.message,
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}:{}: {}",
            self.severity,
            self.code,
            self.location.file.display(),
            self.location.line,
            self.message
        )
    }
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Finding", 7)?;
        s.serialize_field("severity", &self.severity)?;
        s.serialize_field("code", self.code)?;
        s.serialize_field("file", &self.location.file.display().to_string())?;
        s.serialize_field("line", &self.location.line)?;
        s.serialize_field("column", &self.location.column)?;
        s.serialize_field("resource", &self.resource)?;
        s.serialize_field("message", &self.message)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_contract_keys_in_order() {
        let f = Finding::new(
            Severity::Warning,
            "MESH0130",
            "m",
            Location::new("a.yaml", 3, 5),
            None,
        );
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"severity":"WARNING","code":"MESH0130","file":"a.yaml","line":3,"column":5,"resource":null,"message":"m"}"#
        );
        assert_eq!(f.to_string(), "WARNING MESH0130 a.yaml:3: m");
        assert_eq!(Severity::Info.to_string(), "INFO");
        assert!(Severity::Error < Severity::Warning);
    }
}
