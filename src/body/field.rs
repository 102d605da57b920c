//! Reading one field of a parsed body by JSON pointer, with its type checked. Pointers name
//! object members only (`/promoter_swa_code`, `/site/workstream_prefix`).

use serde_json::Value;

/// Why a field could not be read as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A value on the path to the field is not an object, or the field is not a string.
    #[error("wrong JSON type")]
    WrongType,
}

/// The string at `pointer`. `Ok(None)` when a member on the path is absent or `null` (it names
/// nothing); `Err` when something on the path has another type: a number where a code is
/// expected is refused, not stringified, since the upstream may coerce it differently.
pub fn string_at<'v>(doc: &'v Value, pointer: &str) -> Result<Option<&'v str>, FieldError> {
    let mut current = doc;
    for token in pointer.split('/').skip(1) {
        let name = token.replace("~1", "/").replace("~0", "~");
        current = match current {
            Value::Object(members) => match members.get(&name) {
                None | Some(Value::Null) => return Ok(None),
                Some(v) => v,
            },
            _ => return Err(FieldError::WrongType),
        };
    }
    match current {
        Value::String(s) => Ok(Some(s)),
        _ => Err(FieldError::WrongType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_strings_and_refuses_other_types() {
        let doc = json!({"a": "x", "n": 1, "l": ["x"], "o": {"b": "y"}, "z": null, "t": true});
        assert_eq!(string_at(&doc, "/a"), Ok(Some("x")));
        assert_eq!(string_at(&doc, "/o/b"), Ok(Some("y")));
        assert_eq!(string_at(&doc, "/missing"), Ok(None));
        assert_eq!(string_at(&doc, "/z"), Ok(None));
        assert_eq!(string_at(&doc, "/o/missing"), Ok(None));
        for p in ["/n", "/l", "/o", "/t", "/a/b", "/n/b", "/l/0"] {
            assert_eq!(string_at(&doc, p), Err(FieldError::WrongType), "{p}");
        }
        // A document that is not an object cannot carry the field.
        assert_eq!(string_at(&json!(["x"]), "/a"), Err(FieldError::WrongType));
        assert_eq!(string_at(&json!("x"), "/a"), Err(FieldError::WrongType));
    }

    #[test]
    fn pointer_escapes() {
        let doc = json!({"a/b": "s", "c~d": "t"});
        assert_eq!(string_at(&doc, "/a~1b"), Ok(Some("s")));
        assert_eq!(string_at(&doc, "/c~0d"), Ok(Some("t")));
    }
}
