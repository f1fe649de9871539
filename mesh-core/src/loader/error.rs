//! The loader's errors: every one names a file, line and column, and says what to fix.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_saphyr::{Error as YamlError, MessageFormatter as _, UserMessageFormatter};

use crate::model::{Kind, Location};
use crate::suggest::closest;

/// Every error found while loading, across all files, in file order.
///
/// `Display` prints one error per line, `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(errors))]
pub struct LoadError {
    /// The errors: unreadable paths first, then each file's errors in the order the files were
    /// read and, within a file, in document order.
    pub errors: Vec<ConfigError>,
}

impl From<ConfigError> for LoadError {
    fn from(error: ConfigError) -> Self {
        Self {
            errors: vec![error],
        }
    }
}

struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// One problem in one place of the configuration.
///
/// `Display` prints `file:line:column: message`, or `file: message` for errors about a whole
/// file (an unreadable file or a missing path), whose location has line and column 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", Where(location))]
pub struct ConfigError {
    /// Where the problem is: the key of an unknown field, the value of a bad value, the start
    /// of a document for a problem with the whole document.
    pub location: Location,
    /// What is wrong, for people (one line, no location).
    pub message: String,
    /// What is wrong, for programs.
    pub kind: ConfigErrorKind,
}

impl ConfigError {
    /// An error at `location`.
    pub fn new(location: Location, kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            location,
            message: message.into(),
            kind,
        }
    }
}

struct Where<'a>(&'a Location);

impl fmt::Display for Where<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.line == 0 {
            write!(f, "{}", self.0.file.display())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The kind of a [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// A path could not be read (missing, unreadable). The location has line 0.
    Io,
    /// The text is not well-formed YAML (or JSON), not UTF-8, or exceeds the parser's limits.
    Syntax,
    /// A mapping has the same key twice.
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// A field that the resource's schema does not have.
    UnknownField {
        /// The field as written.
        field: String,
        /// The nearest known field, if one is close.
        suggestion: Option<String>,
    },
    /// An enum value (`simple: LEAST_REQUESTS`) that is not one of the allowed names.
    UnknownVariant {
        /// The value as written.
        variant: String,
        /// The nearest allowed value, if one is close.
        suggestion: Option<String>,
    },
    /// A `kind` in an Istio API group that is not an Istio kind (a typo such as
    /// `VirtualSevice`).
    UnknownKind {
        /// The kind as written.
        kind: String,
        /// The nearest supported kind, if one is close.
        suggestion: Option<String>,
    },
    /// A value of the wrong type or out of range.
    InvalidValue,
    /// A required field is absent (`metadata.name`, …).
    MissingField {
        /// The field, as a dotted path when it is in the envelope (`metadata.name`).
        field: String,
    },
    /// A supported kind with an `apiVersion` that is not accepted for it.
    UnsupportedApiVersion {
        /// The kind.
        kind: Kind,
        /// The `apiVersion` as written.
        api_version: String,
    },
    /// A document without `apiVersion` or `kind`.
    MissingTypeMeta,
}

/// Builds locations in one file.
#[derive(Clone, Debug)]
pub(super) struct FileRef {
    pub(super) file: Arc<Path>,
}

impl FileRef {
    pub(super) fn new(file: &Path) -> Self {
        Self {
            file: Arc::from(file),
        }
    }

    /// A location at a serde-saphyr position (line 1 column 1 when it is unknown).
    pub(super) fn at(&self, pos: serde_saphyr::Location) -> Location {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX).max(1);
        Location {
            file: Arc::clone(&self.file),
            line: clamp(pos.line()),
            column: clamp(pos.column()),
        }
    }

    /// A location at `line` and `column` (1-based, or 0 for the whole file).
    pub(super) fn line_col(&self, line: u32, column: u32) -> Location {
        Location {
            file: Arc::clone(&self.file),
            line,
            column,
        }
    }

    /// An I/O error about the whole file.
    pub(super) fn io(&self, what: &str, err: &std::io::Error) -> ConfigError {
        let reason = match err.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => err.to_string(),
        };
        ConfigError::new(
            self.line_col(0, 0),
            ConfigErrorKind::Io,
            format!("{what}: {reason}"),
        )
    }

    /// The loader's error for a serde-saphyr error: its location, and a short message without
    /// location suffix or snippet, with a suggestion for unknown names.
    pub(super) fn yaml(&self, err: &YamlError) -> ConfigError {
        let location = err
            .location()
            .map_or_else(|| self.line_col(1, 1), |pos| self.at(pos));
        let mut inner = err.without_snippet();
        while let YamlError::AliasError { error, .. } = inner {
            inner = error.without_snippet();
        }
        let (kind, message) = describe(inner);
        ConfigError::new(location, kind, sanitize(&message))
    }
}

fn describe(err: &YamlError) -> (ConfigErrorKind, String) {
    use ConfigErrorKind as K;
    match err {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => unknown_field(field, expected),
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => unknown_variant(variant, expected),
        YamlError::SerdeMissingField { field, .. } => (
            K::MissingField {
                field: (*field).to_owned(),
            },
            format!("missing field `{field}`"),
        ),
        YamlError::DuplicateMappingKey { key, .. } => {
            let key = key.clone().unwrap_or_default();
            let message = format!("duplicate key `{}`", shorten(&key));
            (K::DuplicateKey { key }, message)
        }
        YamlError::Unexpected { expected, .. } => {
            let message = match *expected {
                "sequence start" => "expected a list".to_owned(),
                "mapping start" => "expected a mapping (`key: value` lines)".to_owned(),
                "string scalar" => "expected a string".to_owned(),
                "scalar" => "expected a single value".to_owned(),
                other => format!("expected {other}"),
            };
            (K::InvalidValue, message)
        }
        YamlError::InvalidScalar { ty, .. } => (K::InvalidValue, invalid_scalar(ty)),
        YamlError::NullIntoString { .. } => (
            K::InvalidValue,
            "expected a string, found null (write \"\" for an empty string)".to_owned(),
        ),
        YamlError::UnknownAnchor { .. } => (
            K::Syntax,
            "alias refers to an unknown anchor (anchors do not reach across `---`)".to_owned(),
        ),
        YamlError::Message { .. }
        | YamlError::SerdeInvalidType { .. }
        | YamlError::SerdeInvalidValue { .. }
        | YamlError::SerdeInvalidLength { .. }
        | YamlError::InvalidBooleanStrict { .. }
        | YamlError::InvalidBinaryBase64 { .. }
        | YamlError::BinaryNotUtf8 { .. }
        | YamlError::TaggedScalarCannotDeserializeIntoString { .. }
        | YamlError::BytesNotSupportedMissingBinaryTag { .. }
        | YamlError::InvalidCharNull { .. }
        | YamlError::InvalidCharNotSingleScalar { .. }
        | YamlError::UnexpectedValueForUnit { .. }
        | YamlError::ExpectedEmptyMappingForUnitStruct { .. }
        | YamlError::UnexpectedValueForUnitEnumVariant { .. }
        | YamlError::ExpectedStringKeyForExternallyTaggedEnum { .. }
        | YamlError::ExternallyTaggedEnumExpectedScalarOrMapping { .. }
        | YamlError::TaggedEnumMismatch { .. }
        | YamlError::SerdeVariantId { .. }
        | YamlError::NonFiniteFloat { .. }
        | YamlError::QuotingRequired { .. }
        | YamlError::UnsupportedTag { .. } => (
            K::InvalidValue,
            UserMessageFormatter.format_message(err).into_owned(),
        ),
        _ => (
            K::Syntax,
            UserMessageFormatter.format_message(err).into_owned(),
        ),
    }
}

fn invalid_scalar(ty: &str) -> String {
    let want = match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => {
            format!("a whole number from 0 to {}", unsigned_max(ty))
        }
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => format!("a whole number ({ty})"),
        "f32" | "f64" => "a number".to_owned(),
        "bool" => "true or false".to_owned(),
        other => other.to_owned(),
    };
    format!("invalid value: expected {want}")
}

fn unsigned_max(ty: &str) -> String {
    match ty {
        "u8" => u8::MAX.to_string(),
        "u16" => u16::MAX.to_string(),
        "u32" => u32::MAX.to_string(),
        _ => u64::MAX.to_string(),
    }
}

/// `unknown field `x`, did you mean `y`?` or `…, expected one of `a`, `b``.
pub(super) fn unknown_field<S: AsRef<str>>(
    field: &str,
    expected: &[S],
) -> (ConfigErrorKind, String) {
    let suggestion = closest(field, expected).map(str::to_owned);
    let message = unknown_message("field", field, suggestion.as_deref(), expected);
    (
        ConfigErrorKind::UnknownField {
            field: field.to_owned(),
            suggestion,
        },
        message,
    )
}

/// `unknown variant `x`, did you mean `y`?` or `…, expected one of `a`, `b``.
pub(super) fn unknown_variant<S: AsRef<str>>(
    variant: &str,
    expected: &[S],
) -> (ConfigErrorKind, String) {
    let suggestion = closest(variant, expected).map(str::to_owned);
    let message = unknown_message("value", variant, suggestion.as_deref(), expected);
    (
        ConfigErrorKind::UnknownVariant {
            variant: variant.to_owned(),
            suggestion,
        },
        message,
    )
}

pub(super) fn unknown_message<S: AsRef<str>>(
    what: &str,
    name: &str,
    suggestion: Option<&str>,
    expected: &[S],
) -> String {
    let name = shorten(name);
    match (suggestion, expected) {
        (Some(s), _) => format!("unknown {what} `{name}`, did you mean `{s}`?"),
        (None, []) => format!("unknown {what} `{name}`, there are none here"),
        (None, [one]) => format!("unknown {what} `{name}`, expected `{}`", one.as_ref()),
        (None, many) => {
            let list: Vec<String> = many.iter().map(|s| format!("`{}`", s.as_ref())).collect();
            format!(
                "unknown {what} `{name}`, expected one of {}",
                list.join(", ")
            )
        }
    }
}

/// The kind and message for a serde error text that has no structure (from
/// `serde_json::from_value`): unknown fields and variants get their suggestion.
pub(super) fn describe_text(text: &str) -> (ConfigErrorKind, String) {
    for (prefix, is_field) in [("unknown field `", true), ("unknown variant `", false)] {
        let Some(rest) = text.strip_prefix(prefix) else {
            continue;
        };
        let Some((name, tail)) = rest.split_once('`') else {
            continue;
        };
        // The tail lists the expected names in backticks: ", expected one of `a`, `b`".
        let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return if is_field {
            unknown_field(name, &expected)
        } else {
            unknown_variant(name, &expected)
        };
    }
    if let Some(rest) = text.strip_prefix("missing field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        return (
            ConfigErrorKind::MissingField {
                field: field.to_owned(),
            },
            text.to_owned(),
        );
    }
    (ConfigErrorKind::InvalidValue, text.to_owned())
}

/// Cuts a name from the input to a length fit for one line.
pub(super) fn shorten(name: &str) -> String {
    const MAX: usize = 80;
    if name.chars().count() <= MAX {
        name.to_owned()
    } else {
        let mut s: String = name.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

/// Escapes control characters so that a message from hostile input stays one harmless line.
pub(super) fn sanitize(message: &str) -> String {
    if !message.chars().any(char::is_control) {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_serde_texts() {
        let (kind, msg) =
            describe_text("unknown field `retires`, expected one of `name`, `retries`");
        assert_eq!(msg, "unknown field `retires`, did you mean `retries`?");
        assert_eq!(
            kind,
            ConfigErrorKind::UnknownField {
                field: "retires".into(),
                suggestion: Some("retries".into())
            }
        );
        let (_, msg) = describe_text("unknown field `zzz`, expected `name`");
        assert_eq!(msg, "unknown field `zzz`, expected `name`");
        let (_, msg) = describe_text("unknown field `zzz`, there are no fields");
        assert_eq!(msg, "unknown field `zzz`, there are none here");
        let (kind, msg) = describe_text(
            "unknown variant `DNS_ROUND`, expected one of `DNS`, `DNS_ROUND_ROBIN`, `STATIC`",
        );
        assert!(
            matches!(kind, ConfigErrorKind::UnknownVariant { .. }),
            "{kind:?}"
        );
        assert_eq!(
            msg,
            "unknown value `DNS_ROUND`, expected one of `DNS`, `DNS_ROUND_ROBIN`, `STATIC`"
        );
        let (kind, _) = describe_text("missing field `host`");
        assert_eq!(
            kind,
            ConfigErrorKind::MissingField {
                field: "host".into()
            }
        );
        let (kind, msg) = describe_text("invalid type: string \"x\", expected u32");
        assert_eq!(kind, ConfigErrorKind::InvalidValue);
        assert_eq!(msg, "invalid type: string \"x\", expected u32");
    }

    #[test]
    fn sanitizes_and_shortens() {
        assert_eq!(sanitize("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(shorten(&"x".repeat(100)).chars().count(), 81);
    }

    #[test]
    fn display_forms() {
        let file = FileRef::new(Path::new("dir/a.yaml"));
        let e = ConfigError::new(file.line_col(3, 5), ConfigErrorKind::InvalidValue, "bad");
        assert_eq!(e.to_string(), "dir/a.yaml:3:5: bad");
        let io = ConfigError::new(file.line_col(0, 0), ConfigErrorKind::Io, "cannot read");
        assert_eq!(io.to_string(), "dir/a.yaml: cannot read");
        let all = LoadError {
            errors: vec![e, io],
        };
        assert_eq!(
            all.to_string(),
            "dir/a.yaml:3:5: bad\ndir/a.yaml: cannot read"
        );
    }
}
