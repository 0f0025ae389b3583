//! A JSON value that borrows its strings from the input: an entry is parsed into this (few
//! allocations: strings without escapes are not copied) and read leniently by `entry`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum J<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<J<'a>>),
    Obj(Obj<'a>),
}

/// Object members in file order. Lookups take the last of duplicate keys, as a map would.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Obj<'a>(pub Vec<(Cow<'a, str>, J<'a>)>);

impl<'a> Obj<'a> {
    pub fn get(&self, key: &str) -> Option<&J<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn take(&mut self, key: &str) -> Option<J<'a>> {
        let i = self.0.iter().rposition(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }
}

impl J<'_> {
    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Bool(_) => "a boolean",
            J::Int(_) | J::Uint(_) | J::Float(_) => "a number",
            J::Str(_) => "a string",
            J::Arr(_) => "an array",
            J::Obj(_) => "an object",
        }
    }
}

impl fmt::Display for J<'_> {
    /// Short JSON-ish rendering for messages (containers are summarized).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            J::Null => f.write_str("null"),
            J::Bool(b) => write!(f, "{b}"),
            J::Int(n) => write!(f, "{n}"),
            J::Uint(n) => write!(f, "{n}"),
            J::Float(n) => write!(f, "{n}"),
            J::Str(s) => {
                let short: String = s.chars().take(60).collect();
                write!(f, "{short:?}")
            }
            J::Arr(_) => f.write_str("an array"),
            J::Obj(_) => f.write_str("an object"),
        }
    }
}

/// A string, borrowed when the input allows.
struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de> Deserialize<'de> for J<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JVisitor)
    }
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(J::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(J::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(J::Uint(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(J::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(J::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(J::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(J::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(J::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = map.next_key_seed(StrSeed)? {
            out.push((k, map.next_value()?));
        }
        Ok(J::Obj(Obj(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_keeps_order() {
        let text = r#"{"b": "x", "a": ["y\n", 1, -2, 1.5, true, null], "b": "z"}"#;
        let J::Obj(mut o) = serde_json::from_str::<J>(text).unwrap() else {
            panic!()
        };
        assert!(matches!(o.get("b"), Some(J::Str(Cow::Borrowed("z")))));
        let J::Arr(a) = o.take("a").unwrap() else {
            panic!()
        };
        assert!(matches!(&a[0], J::Str(Cow::Owned(s)) if s == "y\n"));
        assert_eq!(
            &a[1..],
            [
                J::Uint(1),
                J::Int(-2),
                J::Float(1.5),
                J::Bool(true),
                J::Null
            ]
        );
        assert!(o.get("a").is_none());
        assert_eq!(o.0.len(), 2);
    }
}
