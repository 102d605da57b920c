//! The third-party integrator a token acts through (seed 002), read from its claims.
//!
//! Spellings, in precedence order:
//! 1. `act.sub` (RFC 8693 token exchange: the current actor);
//! 2. `azp` (OpenID Connect authorized party);
//! 3. `client_id` (RFC 9068 access tokens).
//!
//! A client id listed in `auth.claims.first_party_clients` is the API's own client, not an
//! integrator. A token is refused (`token_claims`) rather than guessed at when the spellings
//! could be read two ways: two of them naming different integrators, a nested `act` (a chain
//! of actors: one integrator relaying through another), an `act` without a string `sub`, a
//! non-string or empty value, a case or separator variant of a claim name (`Azp`, `clientId`,
//! `client-id`), or any of them repeated in the payload.

use serde_json::{Map, Value};

use super::error::AuthError;

/// The spellings, normalised (lower case, no `_` or `-`), that only these exact names may use.
const NORMALISED: [(&str, &str); 3] = [("act", "act"), ("azp", "azp"), ("clientid", "client_id")];

/// The integrator named by the claims, if any. `payload` is the decoded claims JSON, re-read
/// strictly for repeated names only when an integrator claim is present.
pub fn integrator(
    claims: &Map<String, Value>,
    payload: &[u8],
    first_party: &[String],
) -> Result<Option<String>, AuthError> {
    let mut present = false;
    for name in claims.keys() {
        let normal: String = name
            .chars()
            .filter(|c| !matches!(c, '_' | '-'))
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if let Some((_, exact)) = NORMALISED.iter().find(|(n, _)| *n == normal) {
            if name != exact {
                return Err(conflict(format!(
                    "{name:?} is not a spelling streetgate reads; the claim is {exact:?}"
                )));
            }
            present = true;
        }
    }
    if !present {
        return Ok(None);
    }
    // serde_json keeps the last of two equal names; an integrator claim given twice could be
    // read either way by another component, so it is refused.
    if crate::body::strict::parse(payload).is_err() {
        return Err(conflict("the claims repeat a name".to_owned()));
    }
    let actor = match claims.get("act") {
        None => None,
        Some(Value::Object(act)) => {
            if act.contains_key("act") {
                return Err(conflict(
                    "act names a chain of actors; one integrator per token".to_owned(),
                ));
            }
            Some(
                non_empty(act.get("sub"), "act.sub")?
                    .ok_or_else(|| conflict("act has no sub naming the integrator".to_owned()))?,
            )
        }
        Some(_) => return Err(conflict("act is not an object".to_owned())),
    };
    let azp = non_empty(claims.get("azp"), "azp")?;
    let client_id = non_empty(claims.get("client_id"), "client_id")?;
    if let (Some(a), Some(c)) = (azp, client_id)
        && a != c
    {
        return Err(conflict(format!("azp {a:?} and client_id {c:?} differ")));
    }
    let client = azp
        .or(client_id)
        .filter(|c| !first_party.iter().any(|f| f == c));
    match (actor, client) {
        (Some(a), Some(c)) if a != c => Err(conflict(format!(
            "act.sub {a:?} and client id {c:?} name different integrators"
        ))),
        (Some(a), _) => Ok(Some(a.to_owned())),
        (None, c) => Ok(c.map(str::to_owned)),
    }
}

fn non_empty<'c>(value: Option<&'c Value>, name: &str) -> Result<Option<&'c str>, AuthError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(conflict(format!("{name} is not a non-empty string"))),
    }
}

fn conflict(detail: impl std::fmt::Display) -> AuthError {
    AuthError::Claims(format!("integrator: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str, first_party: &[&str]) -> Result<Option<String>, AuthError> {
        let claims: Map<String, Value> = serde_json::from_str(json).unwrap();
        let fp: Vec<String> = first_party.iter().map(|s| (*s).to_owned()).collect();
        integrator(&claims, json.as_bytes(), &fp)
    }

    #[test]
    fn precedence_and_first_party() {
        assert_eq!(read(r#"{"sub":"u"}"#, &[]).unwrap(), None);
        assert_eq!(
            read(r#"{"azp":"acme"}"#, &[]).unwrap().as_deref(),
            Some("acme")
        );
        assert_eq!(
            read(r#"{"client_id":"acme"}"#, &[]).unwrap().as_deref(),
            Some("acme")
        );
        assert_eq!(read(r#"{"azp":"ui"}"#, &["ui"]).unwrap(), None);
        assert_eq!(
            read(r#"{"azp":"ui","act":{"sub":"acme"}}"#, &["ui"])
                .unwrap()
                .as_deref(),
            Some("acme")
        );
        assert_eq!(
            read(
                r#"{"azp":"acme","client_id":"acme","act":{"sub":"acme"}}"#,
                &[]
            )
            .unwrap()
            .as_deref(),
            Some("acme")
        );
    }

    #[test]
    fn ambiguous_spellings_are_refused() {
        for bad in [
            r#"{"azp":"a","client_id":"b"}"#,
            r#"{"azp":"a","act":{"sub":"b"}}"#,
            r#"{"act":{"sub":"a","act":{"sub":"b"}}}"#,
            r#"{"act":{}}"#,
            r#"{"act":"a"}"#,
            r#"{"act":{"sub":7}}"#,
            r#"{"act":{"sub":""}}"#,
            r#"{"azp":""}"#,
            r#"{"azp":["a"]}"#,
            r#"{"client_id":null}"#,
            r#"{"Azp":"a"}"#,
            r#"{"AZP":"a"}"#,
            r#"{"clientId":"a"}"#,
            r#"{"client-id":"a"}"#,
            r#"{"ACT":{"sub":"a"}}"#,
            r#"{"azp":"a","azp":"b"}"#,
            r#"{"azp":"a","azp":"a"}"#,
        ] {
            assert!(read(bad, &[]).is_err(), "{bad}");
        }
    }
}
