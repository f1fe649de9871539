//! Serde helpers for the hand-written (de)serializers of the model: protobuf oneofs written as a
//! single-key map, base64 `bytes`, and "skip when zero" tests.

use std::fmt;

use serde::de::{self, MapAccess};

/// Whether `value` is its type's default (`0`, `false`, `""`): such fields are left out when
/// serializing, as protobuf JSON does.
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Reads a map holding at most one of the string-valued keys `names` (a protobuf oneof whose
/// members are all strings) and returns the index of the key found and its value.
///
/// An unknown key is an `unknown_field` error (so the loader can suggest a name); two members,
/// or one member twice, are errors too.
pub(crate) fn one_string_of<'de, A: MapAccess<'de>>(
    mut map: A,
    names: &'static [&'static str],
) -> Result<Option<(usize, String)>, A::Error> {
    let mut found: Option<(usize, String)> = None;
    while let Some(key) = map.next_key::<String>()? {
        let Some(index) = names.iter().position(|name| *name == key) else {
            return Err(de::Error::unknown_field(&key, names));
        };
        let value: String = map.next_value()?;
        if let Some((first, _)) = &found {
            return Err(if *first == index {
                de::Error::duplicate_field(names[index])
            } else {
                de::Error::custom(format_args!(
                    "`{}` and `{}` cannot both be set (only one of {} is allowed)",
                    names[*first],
                    names[index],
                    OneOf(names)
                ))
            });
        }
        found = Some((index, value));
    }
    Ok(found)
}

/// Formats a list of names as "`a`, `b` or `c`".
pub(crate) struct OneOf(pub(crate) &'static [&'static str]);

impl fmt::Display for OneOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(if i + 1 == self.0.len() { " or " } else { ", " })?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding: the form protobuf JSON writes `bytes` fields in.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let sextet = (n >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(BASE64_ALPHABET[sextet as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64 as protobuf JSON parsers accept it: standard or URL-safe alphabet, with or
/// without padding; ASCII whitespace (from folded YAML lines) is ignored.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let data: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let body_len = data.len() - data.iter().rev().take_while(|b| **b == b'=').count();
    let padding = data.len() - body_len;
    if padding > 2 || (padding > 0 && !data.len().is_multiple_of(4)) || body_len % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body_len * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in &data[..body_len] {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for input in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xff, 0xfe, 0x00],
        ] {
            let encoded = base64_encode(input);
            assert_eq!(base64_decode(&encoded).as_deref(), Some(input), "{encoded}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
    }

    #[test]
    fn base64_accepts_protobuf_json_variants() {
        assert_eq!(base64_decode("Zm8").as_deref(), Some(&b"fo"[..]));
        assert_eq!(base64_decode("Zm9v\nYmFy").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(base64_decode("-_8=").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64_decode("+/8=").as_deref(), Some(&[0xfb, 0xff][..]));
        for bad in ["Z", "Zm9=v", "Zm===", "Zm8*", "Zm9vY="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_of_lists_names() {
        assert_eq!(OneOf(&["a"]).to_string(), "`a`");
        assert_eq!(OneOf(&["a", "b", "c"]).to_string(), "`a`, `b` or `c`");
    }
}
