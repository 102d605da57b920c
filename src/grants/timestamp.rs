//! RFC 3339 timestamps of the grants document, as whole seconds since the Unix epoch.
//!
//! Kept over time/jiff: humantime (already a dependency) does the parsing; this file only adds
//! the `±HH:MM` offset humantime lacks, in fewer lines than another date crate would cost.

use std::time::UNIX_EPOCH;

/// `2026-11-23T07:00:00Z`, with optional fraction and a `Z` or `±HH:MM` offset. Fractions are
/// truncated: `tokens_valid_after` is compared with a token's `iat`, which is whole seconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    // humantime only knows UTC; take any offset off first and apply it afterwards.
    let (utc, offset_secs) = split_offset(s)?;
    let t = humantime::parse_rfc3339(&utc).ok()?;
    let secs = i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    u64::try_from(secs.checked_sub(offset_secs)?).ok()
}

fn split_offset(s: &str) -> Option<(String, i64)> {
    if let Some(head) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((format!("{head}Z"), 0));
    }
    let cut = s.len().checked_sub(6)?;
    let (head, tail) = (s.get(..cut)?, s.get(cut..)?.as_bytes());
    let sign = match tail[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    if tail[3] != b':' || ![1, 2, 4, 5].iter().all(|&i| tail[i].is_ascii_digit()) {
        return None;
    }
    let digit = |i: usize| i64::from(tail[i] - b'0');
    let (hours, minutes) = (digit(1) * 10 + digit(2), digit(4) * 10 + digit(5));
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((format!("{head}Z"), sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn utc_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-23T07:00:00Z"), Some(1_795_417_200));
        assert_eq!(
            parse_rfc3339("2026-11-23T07:00:00.999Z"),
            Some(1_795_417_200)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T08:30:00+01:30"),
            Some(1_795_417_200)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T06:00:00-01:00"),
            Some(1_795_417_200)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T07:00:00+00:00"),
            Some(1_795_417_200)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T07:00:00",
            "2026-11-23 07:00:00Z",
            "2026-13-23T07:00:00Z",
            "2026-11-23T25:00:00Z",
            "2026-11-23T07:00:00+1:00",
            "2026-11-23T07:00:00+24:00",
            "yesterday",
            "1969-12-31T23:59:59Z",
            "2026-11-23T07:00:00Zé",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
