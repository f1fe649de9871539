//! "Did you mean …?" suggestions for misspelled field and value names.
//!
//! Strict config is only friendly if a typo is easy to fix: the loader turns serde's
//! "unknown field `retires`, expected one of `name`, `match`, …" into "unknown field
//! `retires`, did you mean `retries`?" with [`closest`]. The distance is Damerau–Levenshtein
//! (optimal string alignment: insertions, deletions, substitutions and swaps of two adjacent
//! characters each cost one), compared without regard to case, so `least_request` finds
//! `LEAST_REQUEST` and `nmae` finds `name`.
//!
//! ```
//! use mesh_core::suggest::{closest, edit_distance};
//!
//! assert_eq!(edit_distance("retires", "retries"), 1);
//! assert_eq!(closest("retires", ["name", "match", "retries", "timeout"]), Some("retries"));
//! assert_eq!(closest("color", ["name", "match", "retries"]), None);
//! ```

/// The Damerau–Levenshtein distance between `a` and `b` in the optimal-string-alignment
/// variant, counted in characters and case-sensitive.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    osa_distance(&a, &b)
}

/// The candidate nearest to `word`, if it is close enough to be the intended name.
///
/// Names are compared case-insensitively. A candidate qualifies when its distance is at most
/// a third of the length of `word` (at least one edit); the nearest wins, and the first listed
/// among equally near ones. A candidate equal to `word` is never suggested.
pub fn closest<'a, I, S>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a S>,
    S: AsRef<str> + ?Sized + 'a,
{
    let folded: Vec<char> = word.chars().flat_map(char::to_lowercase).collect();
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let candidate = candidate.as_ref();
        if candidate == word {
            continue;
        }
        let other: Vec<char> = candidate.chars().flat_map(char::to_lowercase).collect();
        // Cheap lower bound first: the length difference alone may exceed the limit.
        if folded.len().abs_diff(other.len()) > limit {
            continue;
        }
        let d = osa_distance(&folded, &other);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal string alignment distance over characters, with three rolling rows.
fn osa_distance(a: &[char], b: &[char]) -> usize {
    if a.is_empty() {
        return b.len();
    }
    if b.is_empty() {
        return a.len();
    }
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("retires", "retries"), 1);
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(edit_distance("ca", "abc"), 3);
        assert_eq!(edit_distance("Name", "name"), 1);
        assert_eq!(edit_distance("héllo", "hello"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn distance_is_symmetric() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "retries",
            "retires",
            "timeout",
            "LEAST_REQUEST",
        ];
        for a in words {
            for b in words {
                assert_eq!(edit_distance(a, b), edit_distance(b, a), "{a} {b}");
            }
        }
    }

    #[test]
    fn suggests_close_names() {
        let fields = [
            "name", "match", "route", "redirect", "retries", "timeout", "fault",
        ];
        assert_eq!(closest("retires", fields), Some("retries"));
        assert_eq!(closest("timout", fields), Some("timeout"));
        assert_eq!(closest("nmae", fields), Some("name"));
        assert_eq!(closest("Match", fields), Some("match"));
        assert_eq!(closest("routes", fields), Some("route"));
    }

    #[test]
    fn case_insensitive_for_enum_variants() {
        let variants = [
            "UNSPECIFIED",
            "LEAST_CONN",
            "RANDOM",
            "PASSTHROUGH",
            "ROUND_ROBIN",
            "LEAST_REQUEST",
        ];
        assert_eq!(closest("LEAST_REQUESTS", variants), Some("LEAST_REQUEST"));
        assert_eq!(closest("least_request", variants), Some("LEAST_REQUEST"));
        assert_eq!(closest("round-robin", variants), Some("ROUND_ROBIN"));
        assert_eq!(closest("random", variants), Some("RANDOM"));
    }

    #[test]
    fn no_suggestion_when_far() {
        let fields = ["name", "match", "route", "retries"];
        assert_eq!(closest("color", fields), None);
        assert_eq!(closest("foo", ["to", "tls"]), None);
        assert_eq!(closest("x", fields), None);
        assert_eq!(closest("", fields), None);
        assert_eq!(closest::<_, str>("retries", []), None);
        assert_eq!(closest("name", ["name"]), None);
    }

    #[test]
    fn first_of_equally_near_wins() {
        assert_eq!(closest("abcd", ["abce", "abcf"]), Some("abce"));
        assert_eq!(closest("abcd", ["abcf", "abc", "abcd1"]), Some("abcf"));
    }

    #[test]
    fn accepts_strings() {
        let owned = vec![String::from("retries"), String::from("timeout")];
        assert_eq!(closest("retires", &owned), Some("retries"));
    }
}
