//! Reading one field of a parsed body by JSON pointer, with its type checked. Pointers name
//! object members only (`/promoter_swa_code`, `/site/workstream_prefix`).
//!
//! Members are matched the way the most lenient upstream binder might match them: Newtonsoft
//! and ASP.NET bind JSON members to properties ignoring case, so `"Promoter_Swa_Code"` is the
//! promoter to them. A member on the field's path spelt other than exactly, or two spellings of
//! it, is refused rather than read one way here and another way upstream.

use serde_json::Value;

/// Why a field could not be read as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A value on the path to the field is not an object, or the field is not a string.
    #[error("wrong JSON type")]
    WrongType,
    /// A member on the path is spelt other than exactly (case), or spelt more than one way.
    #[error("member {0:?} is spelt ambiguously")]
    Spelling(String),
}

/// The string at `pointer`. `Ok(None)` when a member on the path is absent or `null` (it names
/// nothing); `Err` when something on the path has another type: a number where a code is
/// expected is refused, not stringified, since the upstream may coerce it differently.
pub fn string_at<'v>(doc: &'v Value, pointer: &str) -> Result<Option<&'v str>, FieldError> {
    let mut current = doc;
    for token in pointer.split('/').skip(1) {
        let name = token.replace("~1", "/").replace("~0", "~");
        current = match current {
            Value::Object(members) => match member(members, &name)? {
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

/// The member spelt exactly `name`, when no other member folds to the same name.
fn member<'v>(
    members: &'v serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<&'v Value>, FieldError> {
    let mut found = None;
    for (key, value) in members {
        if !same_ignoring_case(key, name) {
            continue;
        }
        if key != name || found.is_some() {
            return Err(FieldError::Spelling(key.clone()));
        }
        found = Some(value);
    }
    Ok(found)
}

/// Equal ignoring case, including Unicode case mappings that land on ASCII (`ſ` uppercases to
/// `S`, the Kelvin sign lowercases to `k`), as .NET's ordinal-ignore-case comparison does.
fn same_ignoring_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    let upper = |s: &str| s.chars().flat_map(char::to_uppercase).collect::<String>();
    let lower = |s: &str| s.chars().flat_map(char::to_lowercase).collect::<String>();
    upper(a) == upper(b) || lower(a) == lower(b)
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
    fn other_spellings_of_a_member_on_the_path_are_refused() {
        for doc in [
            json!({"Promoter_Swa_Code": "9999"}),
            json!({"PROMOTER_SWA_CODE": "9999"}),
            json!({"promoter_swa_code": "7001", "Promoter_swa_code": "9999"}),
            json!({"\u{17f}ite": {"promoter_swa_code": "9999"}}),
            json!({"Site": {"promoter_swa_code": "9999"}, "site": {}}),
        ] {
            let pointer = if doc.to_string().contains("ite") {
                "/site/promoter_swa_code"
            } else {
                "/promoter_swa_code"
            };
            assert!(
                matches!(string_at(&doc, pointer), Err(FieldError::Spelling(_))),
                "{doc}"
            );
        }
        // Unrelated members and other objects' members are not looked at.
        let doc = json!({"promoter_swa_code": "7001", "promoter_swa_codes": "x", "o": {"Promoter_Swa_Code": 1}});
        assert_eq!(string_at(&doc, "/promoter_swa_code"), Ok(Some("7001")));
    }

    #[test]
    fn pointer_escapes() {
        let doc = json!({"a/b": "s", "c~d": "t"});
        assert_eq!(string_at(&doc, "/a~1b"), Ok(Some("s")));
        assert_eq!(string_at(&doc, "/c~0d"), Ok(Some("t")));
    }
}
