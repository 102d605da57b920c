//! Finding the token in a request's headers. Ambiguity is rejected rather than resolved: a
//! repeated token header, or two sources carrying different tokens, could otherwise make the
//! sidecar and the upstream disagree about who is calling.

use http::header::{AUTHORIZATION, HeaderName};
use http::{HeaderMap, HeaderValue};

use super::config::RawTokenSource;
use super::error::AuthError;

/// A compiled token source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A header whose whole value is the token.
    Header(HeaderName),
    /// `Authorization: Bearer <token>`.
    Bearer,
}

impl TokenSource {
    /// `None` when the header name is not a valid HTTP header name.
    pub fn compile(raw: &RawTokenSource) -> Option<TokenSource> {
        match raw {
            RawTokenSource::Header(name) => HeaderName::from_bytes(name.as_bytes())
                .ok()
                .map(TokenSource::Header),
            RawTokenSource::Bearer => Some(TokenSource::Bearer),
        }
    }
}

/// The one token the request carries, checked against `max_bytes` before anything reads it.
pub fn extract<'h>(
    headers: &'h HeaderMap,
    sources: &[TokenSource],
    max_bytes: usize,
) -> Result<&'h str, AuthError> {
    let mut found: Option<&str> = None;
    for source in sources {
        let token = match source {
            TokenSource::Header(name) => single(headers, name)?.map(|v| as_token(v, max_bytes)),
            TokenSource::Bearer => {
                single(headers, &AUTHORIZATION)?.and_then(|v| bearer(v, max_bytes))
            }
        };
        let Some(token) = token.transpose()? else {
            continue;
        };
        match found {
            Some(earlier) if earlier != token => {
                return Err(AuthError::Malformed("different tokens in two places"));
            }
            _ => found = Some(token),
        }
    }
    found.ok_or(AuthError::Missing)
}

fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h HeaderValue>, AuthError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(AuthError::Malformed("token header repeated")),
    }
}

fn as_token(value: &HeaderValue, max_bytes: usize) -> Result<&str, AuthError> {
    check_size(value.as_bytes(), max_bytes)?;
    let token = value
        .to_str()
        .map_err(|_| AuthError::Malformed("token is not visible ASCII"))?;
    if token.is_empty() {
        return Err(AuthError::Malformed("empty token"));
    }
    Ok(token)
}

/// `None` for another scheme (e.g. Basic): that header is not a token source.
fn bearer(value: &HeaderValue, max_bytes: usize) -> Option<Result<&str, AuthError>> {
    const SCHEME: &[u8] = b"bearer ";
    let bytes = value.as_bytes();
    if bytes.len() < SCHEME.len() || !bytes[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let Ok(text) = value.to_str() else {
        return Some(Err(AuthError::Malformed("token is not visible ASCII")));
    };
    let token = text[SCHEME.len()..].trim_matches(' ');
    if let Err(e) = check_size(token.as_bytes(), max_bytes) {
        return Some(Err(e));
    }
    if token.is_empty() {
        return Some(Err(AuthError::Malformed("empty token")));
    }
    Some(Ok(token))
}

fn check_size(token: &[u8], max: usize) -> Result<(), AuthError> {
    if token.len() > max {
        return Err(AuthError::TooLarge {
            len: token.len(),
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<TokenSource> {
        crate::authn::config::defaults::token_sources()
            .iter()
            .map(|s| TokenSource::compile(s).unwrap())
            .collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn run(pairs: &[(&str, &str)]) -> Result<String, crate::reason::Reason> {
        extract(&headers(pairs), &defaults(), 64)
            .map(str::to_owned)
            .map_err(|e| e.reason())
    }

    #[test]
    fn reads_either_source() {
        assert_eq!(run(&[("token", "a.b.c")]), Ok("a.b.c".into()));
        assert_eq!(
            run(&[("authorization", "Bearer a.b.c")]),
            Ok("a.b.c".into())
        );
        assert_eq!(
            run(&[("authorization", "bearer a.b.c")]),
            Ok("a.b.c".into())
        );
        assert_eq!(
            run(&[("token", "a.b.c"), ("authorization", "Bearer a.b.c")]),
            Ok("a.b.c".into())
        );
    }

    #[test]
    fn missing_and_other_schemes() {
        use crate::reason::Reason::*;
        assert_eq!(run(&[]), Err(TokenMissing));
        assert_eq!(
            run(&[("authorization", "Basic dXNlcjpw")]),
            Err(TokenMissing)
        );
        assert_eq!(run(&[("authorization", "Bearer ")]), Err(TokenMalformed));
        assert_eq!(run(&[("token", "")]), Err(TokenMalformed));
    }

    #[test]
    fn ambiguity_is_rejected() {
        use crate::reason::Reason::*;
        assert_eq!(
            run(&[("token", "a.b.c"), ("token", "a.b.c")]),
            Err(TokenMalformed)
        );
        assert_eq!(
            run(&[("token", "a.b.c"), ("authorization", "Bearer x.y.z")]),
            Err(TokenMalformed)
        );
        assert_eq!(
            run(&[
                ("authorization", "Bearer a.b.c"),
                ("authorization", "Bearer a.b.c")
            ]),
            Err(TokenMalformed)
        );
    }

    #[test]
    fn size_is_checked_first() {
        use crate::reason::Reason::*;
        let big = "x".repeat(65);
        assert_eq!(run(&[("token", &big)]), Err(TokenTooLarge));
        assert_eq!(
            run(&[("authorization", &format!("Bearer {big}"))]),
            Err(TokenTooLarge)
        );
        assert_eq!(run(&[("token", &"x".repeat(64))]), Ok("x".repeat(64)));
        let mut h = HeaderMap::new();
        h.insert("token", HeaderValue::from_bytes(&[0xff; 100]).unwrap());
        assert_eq!(
            extract(&h, &defaults(), 64).map_err(|e| e.reason()),
            Err(TokenTooLarge)
        );
    }

    #[test]
    fn configured_header_only() {
        let sources = [TokenSource::compile(&RawTokenSource::Header("x-jwt".into())).unwrap()];
        let h = headers(&[("authorization", "Bearer a.b.c")]);
        assert_eq!(
            extract(&h, &sources, 64).map_err(|e| e.reason()),
            Err(crate::reason::Reason::TokenMissing)
        );
        let h = headers(&[("x-jwt", "a.b.c")]);
        assert_eq!(extract(&h, &sources, 64).unwrap(), "a.b.c");
    }
}
