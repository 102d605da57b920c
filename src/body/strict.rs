//! A JSON parser that refuses duplicate object keys anywhere in the document. serde_json keeps
//! the last of two equal keys; many upstream parsers keep the first. A document with a
//! duplicate is the one place they can disagree, so it is never accepted. Keys are compared
//! after unescaping, so `"a"` and `"\u0061"` are the same key.
//!
//! Everything else serde_json already refuses: trailing bytes after the value, a byte order
//! mark, invalid UTF-8, lone surrogate escapes, nesting deeper than 128.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::BodyError;

/// Parses a whole document strictly.
pub fn parse(bytes: &[u8]) -> Result<Value, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue
        .deserialize(&mut de)
        .map_err(BodyError::Invalid)?;
    de.end().map_err(BodyError::Invalid)?;
    Ok(value)
}

/// Builds a `serde_json::Value`, failing on the second occurrence of a key in any object.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(doc: &[u8]) -> bool {
        parse(doc).is_err()
    }

    #[test]
    fn accepts_ordinary_documents() {
        let v = parse(br#" {"a": [1, -2, 3.5, null, true], "b": {"c": "d"}, "e": {}} "#).unwrap();
        assert_eq!(v["a"][2], 3.5);
        assert_eq!(v["b"]["c"], "d");
        // Equal keys in different objects are not duplicates.
        parse(br#"{"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 1}, {"x": 2}]}"#).unwrap();
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth() {
        for doc in [
            &br#"{"a": 1, "a": 2}"#[..],
            br#"{"a": 1, "b": 2, "a": 1}"#,
            br#"{"o": {"k": "x", "k": "y"}}"#,
            br#"{"l": [{"k": 1}, {"k": 1, "k": 1}]}"#,
            br#"[{"k": 1, "k": 2}]"#,
            br#"{"a": 1, "\u0061": 2}"#,
            br#"{"promoter_swa_code": "7001", "promoter\u005fswa_code": "9999"}"#,
        ] {
            assert!(refused(doc), "{}", String::from_utf8_lossy(doc));
        }
    }

    #[test]
    fn refuses_what_parsers_might_read_differently() {
        for doc in [
            &b"\xEF\xBB\xBF{}"[..], // byte order mark
            b"{} {}",               // trailing document
            b"{}x",                 // trailing garbage
            b"{\"a\": \"\xff\"}",   // invalid UTF-8
            br#"{"a": "\ud800"}"#,  // lone surrogate
            b"{\"a\": 1,}",         // trailing comma
            b"{'a': 1}",            // single quotes
            b"",                    // empty
            b"{\"a\": NaN}",
        ] {
            assert!(refused(doc), "{}", String::from_utf8_lossy(doc));
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(refused(deep.as_bytes()));
    }
}
