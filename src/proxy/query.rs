//! Query parameters read the way the most lenient upstream might read them. Frameworks differ:
//! some match names case-insensitively (ASP.NET, Spring with relaxed binding), some strip a
//! trailing `[]` or `[key]` (PHP, qs), some decode twice. A parameter the decision reads must
//! mean one thing to all of them, so names are compared folded, and anything that could still
//! decode again downstream is refused.

use std::borrow::Cow;

use crate::authz::SwaCodeParam;
use crate::normalize;
use crate::reason::Reason;

pub(super) type Pairs<'q> = Vec<(Cow<'q, str>, Cow<'q, str>)>;

/// Decoded pairs of an already checked query. A name that still holds a percent-escape after
/// decoding (double encoding) is refused: an upstream decoding twice would read another name.
pub(super) fn pairs(query: Option<&str>) -> Result<Pairs<'_>, Reason> {
    let pairs: Pairs<'_> = query
        .map(|q| normalize::query_pairs(q).collect())
        .unwrap_or_default();
    if pairs.iter().any(|(k, _)| has_escape(k)) {
        return Err(Reason::BadQuery);
    }
    Ok(pairs)
}

/// `swaCode` however it is spelt: every name that folds to `swacode` counts, so two spellings
/// are as repeated as two identical ones.
pub(super) fn swa_code<'q>(pairs: &'q Pairs<'_>) -> SwaCodeParam<'q> {
    let mut codes = pairs.iter().filter(|(k, _)| folds_to(k, "swaCode"));
    match (codes.next(), codes.next()) {
        (None, _) => SwaCodeParam::Absent,
        (Some((_, v)), None) => SwaCodeParam::One(v),
        (Some(_), Some(_)) => SwaCodeParam::Repeated,
    }
}

/// The value of the parameter a rule reads. Any spelling that folds to its name counts toward
/// "exactly once"; the one given must be spelt exactly as configured (an upstream matching
/// names exactly would not see another spelling, and would act without it), and its value must
/// not decode again.
pub(super) fn rule_param<'q>(pairs: &'q Pairs<'_>, name: &str) -> Result<Option<&'q str>, Reason> {
    let mut values = pairs.iter().filter(|(k, _)| folds_to(k, name));
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some((k, v)), None) if k == name && !has_escape(v) => Ok(Some(v)),
        _ => Err(Reason::BadQuery),
    }
}

/// Whether a decoded parameter name reads as `target` to a lenient parser: compared ignoring
/// case, including Unicode case mappings that land on ASCII (`ſ` uppercases to `S`, `K`
/// (Kelvin) lowercases to `k`), surrounding whitespace trimmed, on the name's root as qs
/// (Express) reads it: the text before the first `[` (`swaCode[]`, `swaCode[0]`, and
/// `swaCode[]x`, whose trailing text qs drops), or, when the name starts with `[`, the first
/// bracket's content (`[swaCode]=x` is `swaCode=x` to qs).
pub fn folds_to(name: &str, target: &str) -> bool {
    let base = root(name);
    if base.is_ascii() {
        return base.eq_ignore_ascii_case(target);
    }
    let upper = |s: &str| s.chars().flat_map(char::to_uppercase).collect::<String>();
    let lower = |s: &str| s.chars().flat_map(char::to_lowercase).collect::<String>();
    upper(base) == upper(target) || lower(base) == lower(target)
}

/// The name a bracket-parsing framework files a parameter under (see `folds_to`).
fn root(name: &str) -> &str {
    fn trim(s: &str) -> &str {
        s.trim_matches(|c: char| c.is_ascii_whitespace())
    }
    let name = trim(name);
    let base = match name.find('[') {
        None => name,
        Some(0) => {
            let inner = &name[1..];
            inner.find(']').map_or(inner, |end| &inner[..end])
        }
        Some(i) => &name[..i],
    };
    trim(base)
}

/// A `%` followed by two hex digits: text that another decoding pass would change.
pub fn has_escape(s: &str) -> bool {
    s.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && normalize::hex(w[1]).is_some() && normalize::hex(w[2]).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swa(query: &str) -> Result<SwaCodeParam<'static>, Reason> {
        let owned: &'static str = Box::leak(query.to_owned().into_boxed_str());
        let pairs: &'static Pairs<'static> = Box::leak(Box::new(pairs(Some(owned))?));
        Ok(swa_code(pairs))
    }

    #[test]
    fn every_spelling_of_swa_code_counts() {
        for q in [
            "swaCode=7001",
            "SwaCode=7001",
            "SWACODE=7001",
            "swacode=7001",
            "swa%43ode=7001",
            "%73%77%61%43%6f%64%65=7001",
            "swaCode[]=7001",
            "swaCode[0]=7001",
            "swaCode%5B%5D=7001",
            "+swaCode=7001",
            "swaCode+=7001",
            "%C5%BFwaCode=7001",
            "x=1&swaCode=7001",
            "[swaCode]=7001",
            "%5BSWACODE%5D=7001",
            "[swaCode][]=7001",
            "swaCode[]x=7001",
            "swaCode[=7001",
            "[ swaCode ]=7001",
        ] {
            assert_eq!(swa(q), Ok(SwaCodeParam::One("7001")), "{q}");
        }
    }

    #[test]
    fn two_spellings_are_repeated() {
        for q in [
            "swaCode=7001&swaCode=7001",
            "swaCode=7001&SwaCode=9999",
            "swaCode=7001&swaCode[]=9999",
            "swacode=9999&swa%43ode=7001",
            "SWACODE[x]=1&swaCode=7001",
        ] {
            assert_eq!(swa(q), Ok(SwaCodeParam::Repeated), "{q}");
        }
        assert_eq!(
            swa("swaCode=7001&[swaCode]=9999"),
            Ok(SwaCodeParam::Repeated)
        );
        assert_eq!(
            swa("swaCodes=1&xswaCode=2&x[swaCode]=3&[[swaCode]]=4&[]=5"),
            Ok(SwaCodeParam::Absent)
        );
    }

    #[test]
    fn double_encoded_names_are_refused() {
        assert_eq!(swa("swa%2543ode=7001"), Err(Reason::BadQuery));
        assert_eq!(swa("x%2541=1"), Err(Reason::BadQuery));
        assert!(
            swa("x%25=1").is_ok(),
            "a literal percent sign is not an escape"
        );
    }

    #[test]
    fn rule_params_are_exact_and_single() {
        let p = pairs(Some("workRef=NW1&x=2")).unwrap();
        assert_eq!(rule_param(&p, "workRef"), Ok(Some("NW1")));
        assert_eq!(rule_param(&p, "other"), Ok(None));
        for q in [
            "workRef=NW1&WorkRef=NW2",
            "workRef=NW1&workRef[]=NW2",
            "WORKREF=NW1",
            "workRef=NW%2531",
        ] {
            let p = pairs(Some(q)).unwrap();
            assert_eq!(rule_param(&p, "workRef"), Err(Reason::BadQuery), "{q}");
        }
    }
}
