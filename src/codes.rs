//! Fixed-width identifiers of the grants model, held inline so lookups and indexes never
//! allocate for them.

use std::fmt;

/// An organisation's SWA code: exactly 4 ASCII alphanumerics ("0010", "C901").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwaCode([u8; 4]);

/// A workstream prefix: exactly 3 ASCII alphanumerics ("001"). "000" is the default workstream.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workstream([u8; 3]);

fn fixed<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes: [u8; N] = s.as_bytes().try_into().ok()?;
    bytes.iter().all(u8::is_ascii_alphanumeric).then_some(bytes)
}

impl SwaCode {
    pub fn parse(s: &str) -> Option<SwaCode> {
        fixed(s).map(SwaCode)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `parse`).
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// As a header value; never fails, since only ASCII alphanumerics are stored.
    pub fn header_value(&self) -> http::HeaderValue {
        http::HeaderValue::from_bytes(&self.0).unwrap_or(http::HeaderValue::from_static("????"))
    }
}

impl Workstream {
    pub const DEFAULT: Workstream = Workstream(*b"000");

    pub fn parse(s: &str) -> Option<Workstream> {
        fixed(s).map(Workstream)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    pub fn is_default(&self) -> bool {
        *self == Workstream::DEFAULT
    }
}

impl fmt::Debug for SwaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SwaCode({})", self.as_str())
    }
}

impl fmt::Display for SwaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Workstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Workstream({})", self.as_str())
    }
}

impl fmt::Display for Workstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fixed_width_ascii() {
        assert_eq!(SwaCode::parse("0010").unwrap().as_str(), "0010");
        assert_eq!(SwaCode::parse("C901").unwrap().as_str(), "C901");
        assert!(SwaCode::parse("010").is_none());
        assert!(SwaCode::parse("00100").is_none());
        assert!(SwaCode::parse("00/0").is_none());
        assert!(SwaCode::parse("é01").is_none());
        assert!(Workstream::parse("000").unwrap().is_default());
        assert!(!Workstream::parse("001").unwrap().is_default());
        assert!(Workstream::parse("01").is_none());
    }
}
