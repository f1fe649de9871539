//! Durations in the forms Istio accepts.
//!
//! Istio's YAML takes a `google.protobuf.Duration`, whose JSON form is seconds with an `s`
//! suffix (`"1.5s"`), and its docs and users also write Go-style durations (`5m`, `1h30m`,
//! `100ms`, `2us`). Both parse here. Negative durations are rejected; Istio's range checks (for
//! example "at least 1ms") are validation, not parsing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration written as Istio accepts it (`"1.5s"`, `"5m"`, `"1h30m"`, `"100ms"`).
///
/// ```
/// use mesh_core::model::Duration;
///
/// let d: Duration = "1m30s".parse().unwrap();
/// assert_eq!(d.as_std(), std::time::Duration::from_secs(90));
/// assert_eq!(d.to_string(), "90s");
/// assert!("-1s".parse::<Duration>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

/// Why a duration string did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason} (use forms like \"1.5s\", \"100ms\", \"5m\", \"1h30m\")"
)]
#[non_exhaustive]
pub struct ParseDurationError {
    /// The text that failed to parse.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Duration {
    /// Wraps a `std::time::Duration`.
    pub const fn from_std(d: std::time::Duration) -> Self {
        Self(d)
    }

    /// A duration of whole milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    /// A duration of whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }

    /// The `std::time::Duration`.
    pub const fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// Whether the duration is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

/// Nanoseconds per unit, longest unit names first so `ms` is not read as `m` + `s`.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseDurationError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        let s = s.strip_prefix('+').unwrap_or(s);
        if s.starts_with('-') {
            return Err(err("durations cannot be negative"));
        }
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s == "0" {
            return Ok(Self::default());
        }
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_len == 0 {
                return Err(err("expected a number"));
            }
            let (num, after) = rest.split_at(num_len);
            let (unit, scale) = UNITS
                .iter()
                .filter(|(u, _)| after.starts_with(u))
                .max_by_key(|(u, _)| u.len())
                .ok_or_else(|| err("missing or unknown unit (ns, us, ms, s, m, h)"))?;
            total = total
                .checked_add(scaled(num, *scale).ok_or_else(|| err("malformed number"))?)
                .ok_or_else(|| err("too large"))?;
            rest = &after[unit.len()..];
        }
        let secs = u64::try_from(total / 1_000_000_000).map_err(|_| err("too large"))?;
        let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| err("too large"))?;
        Ok(Self(std::time::Duration::new(secs, nanos)))
    }
}

/// `num` (digits with at most one `.`) times `scale` nanoseconds, truncated to whole nanoseconds.
fn scaled(num: &str, scale: u128) -> Option<u128> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let int_v: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int_v.checked_mul(scale)?;
    let mut unit = scale;
    for digit in frac.bytes().take(18) {
        unit /= 10;
        value = value.checked_add(u128::from(digit - b'0') * unit)?;
    }
    Some(value)
}

impl fmt::Display for Duration {
    /// The protobuf JSON form: seconds with up to nine fractional digits and an `s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            write!(f, "{secs}s")
        } else {
            let frac = format!("{nanos:09}");
            write!(f, "{secs}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"1.5s\", \"100ms\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                if v == 0 {
                    Ok(Duration::default())
                } else {
                    Err(E::custom(format!(
                        "invalid duration {v}: a duration needs a unit (write \"{v}s\")"
                    )))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom("durations cannot be negative")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u128 {
        s.parse::<Duration>().unwrap().as_std().as_millis()
    }

    #[test]
    fn accepts_istio_and_go_forms() {
        assert_eq!(ms("1s"), 1000);
        assert_eq!(ms("1.5s"), 1500);
        assert_eq!(ms("0.001s"), 1);
        assert_eq!(ms("100ms"), 100);
        assert_eq!(ms("5m"), 300_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("1m0.5s"), 60_500);
        assert_eq!(ms("0"), 0);
        assert_eq!("2us".parse::<Duration>().unwrap().as_std().as_micros(), 2);
        assert_eq!("7ns".parse::<Duration>().unwrap().as_std().as_nanos(), 7);
        assert_eq!(ms(".5s"), 500);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "5", "-1s", "1x", "s", "1..2s", "1.2.3s", "1s5", "abc"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn displays_protobuf_json_form() {
        assert_eq!("1500ms".parse::<Duration>().unwrap().to_string(), "1.5s");
        assert_eq!("2h".parse::<Duration>().unwrap().to_string(), "7200s");
        assert_eq!(
            "1ns".parse::<Duration>().unwrap().to_string(),
            "0.000000001s"
        );
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(secs in 0u64..10_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::from_std(std::time::Duration::new(secs, nanos));
            proptest::prop_assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }

        #[test]
        fn never_panics(s in "\\PC{0,12}") {
            let _ = s.parse::<Duration>();
        }
    }
}
