//! Only JSON is read by rules: `application/json` or `application/*+json`, with parameters,
//! where a `charset` must be UTF-8 (an upstream honouring `charset=utf-16` would read other
//! values from the same bytes). A body in any other encoding (`Content-Encoding`) is refused
//! for the same reason: the decision would be made on bytes the upstream decodes differently.

use http::{HeaderMap, header};

use super::BodyError;

pub fn check_json(headers: &HeaderMap) -> Result<(), BodyError> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let value = match (types.next(), types.next()) {
        (None, _) => return Err(BodyError::UnsupportedMediaType("no Content-Type")),
        (Some(_), Some(_)) => return Err(BodyError::UnsupportedMediaType("several Content-Types")),
        (Some(v), None) => v
            .to_str()
            .map_err(|_| BodyError::UnsupportedMediaType("Content-Type not ASCII"))?,
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = match essence.split_once('/') {
        Some(("application", subtype)) => {
            subtype == "json" || (subtype.ends_with("+json") && subtype.len() > 5)
        }
        _ => false,
    };
    if !json {
        return Err(BodyError::UnsupportedMediaType("not a JSON media type"));
    }
    for param in parts {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = value.trim().trim_matches('"');
            if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                return Err(BodyError::UnsupportedMediaType("charset is not UTF-8"));
            }
        }
    }
    for encoding in headers.get_all(header::CONTENT_ENCODING) {
        if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err(BodyError::UnsupportedMediaType("content-encoded body"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(types: &[&str], encoding: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for t in types {
            h.append(header::CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
        }
        if let Some(e) = encoding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_str(e).unwrap());
        }
        h
    }

    #[test]
    fn json_types_pass() {
        for t in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/merge-patch+json",
            "application/vnd.api+json; charset=utf-8",
        ] {
            check_json(&with(&[t], None)).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
        check_json(&with(&["application/json"], Some("identity"))).unwrap();
    }

    #[test]
    fn everything_else_is_refused() {
        for t in [
            "text/plain",
            "text/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/+json",
            "application/json; charset=utf-16",
            "application/json; charset=latin1",
            "json",
            "",
        ] {
            assert!(check_json(&with(&[t], None)).is_err(), "{t}");
        }
        assert!(check_json(&HeaderMap::new()).is_err(), "missing");
        assert!(check_json(&with(&["application/json", "application/json"], None)).is_err());
        assert!(check_json(&with(&["application/json"], Some("gzip"))).is_err());
    }
}
