//! A strict reader of the Prometheus text exposition format (version 0.0.4), so tests can
//! check that a `/metrics` page parses and read values from it.
//!
//! Strict on purpose: every sample must belong to a family declared by a `# TYPE` line before
//! it (`name`, or `name_bucket`/`_sum`/`_count` of a histogram), label values must be quoted
//! and escaped correctly, values must be numbers, a histogram's `le` buckets must be cumulative
//! and end at `+Inf` equal to `_count`, and a series may appear only once.
//!
//! ```
//! let text = "# HELP up Whether it is up\n# TYPE up gauge\nup{job=\"a\"} 1\n";
//! let page = mesh_test::prom::parse(text).unwrap();
//! assert_eq!(page.value("up", &[("job", "a")]), Some(1.0));
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (`istio_requests_total`, `…_bucket`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A parsed page.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// Family name → type (`counter`, `gauge`, `histogram`, …).
    pub types: BTreeMap<String, String>,
    /// Every sample, in page order.
    pub samples: Vec<Sample>,
}

/// Why a page does not parse, with the 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl Page {
    /// Samples named `name` whose labels include every pair of `labels`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the matching samples' values; `None` when none matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = false;
        let sum = self
            .select(name, labels)
            .inspect(|_| found = true)
            .map(|s| s.value)
            .sum();
        found.then_some(sum)
    }
}

/// Parses a Prometheus text page.
pub fn parse(text: &str) -> Result<Page, ParseError> {
    let mut page = Page::default();
    let mut seen = HashSet::new();
    // Histogram series (name, labels without `le`) → (le, cumulative count) in order.
    let mut buckets: HashMap<(String, String), Vec<(f64, f64)>> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let err = |message: String| ParseError {
            line: i + 1,
            message,
        };
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            if let Some(t) = rest.strip_prefix("TYPE ") {
                let (name, kind) = t
                    .split_once(' ')
                    .ok_or_else(|| err(format!("TYPE without a type: {line}")))?;
                if !valid_name(name) {
                    return Err(err(format!("bad metric name {name:?}")));
                }
                if !matches!(
                    kind,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(err(format!("unknown type {kind:?}")));
                }
                if page
                    .types
                    .insert(name.to_owned(), kind.to_owned())
                    .is_some()
                {
                    return Err(err(format!("second TYPE line for {name}")));
                }
            }
            continue;
        }
        let sample = sample(line).map_err(err)?;
        let family = family_of(&page.types, &sample.name)
            .ok_or_else(|| err(format!("{} has no TYPE line before it", sample.name)))?;
        let key = format!("{}{:?}", sample.name, sample.labels);
        if !seen.insert(key) {
            return Err(err(format!("duplicate series {line}")));
        }
        if page.types[family] == "histogram" && sample.name.ends_with("_bucket") {
            let le = sample
                .labels
                .get("le")
                .ok_or_else(|| err("bucket without le".to_owned()))?;
            let le = parse_value(le).ok_or_else(|| err(format!("bad le {le:?}")))?;
            let mut rest = sample.labels.clone();
            rest.remove("le");
            let series = buckets
                .entry((family.to_owned(), format!("{rest:?}")))
                .or_default();
            if let Some(&(prev_le, prev)) = series.last()
                && (le <= prev_le || sample.value < prev)
            {
                return Err(err(format!("buckets not increasing: {line}")));
            }
            series.push((le, sample.value));
        }
        page.samples.push(sample);
    }
    for ((family, labels), series) in &buckets {
        let Some(&(le, inf)) = series.last() else {
            continue;
        };
        if le != f64::INFINITY {
            return Err(ParseError {
                line: 0,
                message: format!("{family}{labels}: no +Inf bucket"),
            });
        }
        let count = page.samples.iter().find(|s| {
            s.name == format!("{family}_count") && {
                let mut l = s.labels.clone();
                l.remove("le");
                format!("{l:?}") == *labels
            }
        });
        if count.map(|c| c.value) != Some(inf) {
            return Err(ParseError {
                line: 0,
                message: format!("{family}{labels}: _count differs from the +Inf bucket"),
            });
        }
    }
    Ok(page)
}

/// The declared family a sample belongs to.
fn family_of<'a>(types: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    if let Some((k, _)) = types.get_key_value(name) {
        return Some(k);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some((k, t)) = types.get_key_value(base)
            && (t == "histogram" || t == "summary")
        {
            return Some(k);
        }
    }
    None
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value: {line}"))?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end = loop {
            // Label name.
            let start = match chars.peek() {
                Some(&(_, '}')) => break chars.next().map(|(i, _)| i + 1),
                Some(&(i, _)) => i,
                None => return Err(format!("unterminated labels: {line}")),
            };
            let mut eq = None;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    eq = Some(i);
                    break;
                }
            }
            let eq = eq.ok_or_else(|| format!("label without '=': {line}"))?;
            let key = &after[start..eq];
            if !valid_name(key) || key.contains(':') {
                return Err(format!("bad label name {key:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("unquoted value of {key}: {line}"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape \\{other:?} in {line}")),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\n' => return Err("newline in a label value".to_owned()),
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated value of {key}: {line}"));
            }
            if labels.insert(key.to_owned(), value).is_some() {
                return Err(format!("label {key} twice: {line}"));
            }
            match chars.next().map(|(_, c)| c) {
                Some(',') => {}
                Some('}') => break chars.peek().map_or(Some(after.len()), |&(i, _)| Some(i)),
                _ => return Err(format!("expected ',' or '}}': {line}")),
            }
        };
        let end = end.unwrap_or(after.len());
        rest = &after[end..];
    }
    let mut parts = rest.split_whitespace();
    let value = parts
        .next()
        .and_then(parse_value)
        .ok_or_else(|| format!("bad value: {line}"))?;
    if let Some(ts) = parts.next()
        && ts.parse::<i64>().is_err()
    {
        return Err(format!("bad timestamp (or an exemplar) in {line}"));
    }
    if parts.next().is_some() {
        return Err(format!("trailing text: {line}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_histograms_and_escapes() {
        let text = "# HELP a_total A\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\",y=\"\"} 3\n\
                    # TYPE h histogram\nh_sum 1.5\nh_count 2\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\n";
        let page = parse(text).unwrap();
        let a = page.select("a_total", &[]).next().unwrap();
        assert_eq!(a.labels["x"], "q\"\\\n");
        assert_eq!(a.labels["y"], "");
        assert_eq!(page.value("h_count", &[]), Some(2.0));
        assert_eq!(page.value("h_bucket", &[("le", "1.0")]), Some(1.0));
        assert_eq!(page.value("nope", &[]), None);
    }

    #[test]
    fn rejects_what_a_scraper_would() {
        let rows = [
            "x 1\n",                                                   // no TYPE
            "# TYPE x counter\nx{a=b} 1\n",                            // unquoted
            "# TYPE x counter\nx{a=\"b\"} one\n",                      // value
            "# TYPE x counter\nx 1 # {trace_id=\"t\"} 1.0\n",          // exemplar
            "# TYPE x counter\nx 1\nx 2\n",                            // duplicate
            "# TYPE h histogram\nh_count 1\nh_bucket{le=\"1.0\"} 1\n", // no +Inf
            "# TYPE h histogram\nh_count 1\nh_bucket{le=\"1.0\"} 2\nh_bucket{le=\"+Inf\"} 1\n",
            "# TYPE x counter\n# TYPE x counter\n",
        ];
        for text in rows {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
