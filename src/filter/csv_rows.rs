//! CSV rows (data export downloads): the header and the caller's records are copied byte for
//! byte from the body, so quoting stays exactly as the upstream wrote it.

use std::borrow::Cow;

use super::FilterError;
use super::rows::{Judge, KeyValues};

#[derive(Debug)]
pub(super) struct Filtered {
    pub body: Vec<u8>,
    pub kept: u64,
    pub dropped: u64,
}

pub(super) fn filter(body: &[u8], judge: &Judge<'_>) -> Result<Filtered, FilterError> {
    // Quotes come in pairs in RFC 4180 (open, close, doubled); an odd count is an unterminated
    // field, typically a truncated body, which the csv reader would otherwise accept at EOF.
    if !body
        .iter()
        .filter(|b| **b == b'"')
        .count()
        .is_multiple_of(2)
    {
        return Err(FilterError::Csv("unterminated quoted field"));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let headers = reader.byte_headers().map_err(FilterError::CsvSyntax)?;
    let column = |name: &str| {
        let mut found = headers
            .iter()
            .enumerate()
            .filter(|(_, h)| *h == name.as_bytes());
        match (found.next(), found.next()) {
            (Some((i, _)), None) => Ok(i),
            (None, _) => Err(FilterError::CsvColumn(name.to_owned())),
            (Some(_), Some(_)) => Err(FilterError::CsvColumn(name.to_owned())),
        }
    };
    let (first_name, second_name) = judge.fields();
    let first_col = column(first_name)?;
    let second_col = second_name.map(column).transpose()?;

    let header_end = line_end(body, position(&reader)?);
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..header_end]);
    let (mut kept, mut dropped) = (0, 0);
    let mut record = csv::ByteRecord::new();
    loop {
        let start = line_start(body, position(&reader)?);
        if !reader
            .read_byte_record(&mut record)
            .map_err(FilterError::CsvSyntax)?
        {
            break;
        }
        let end = line_end(body, position(&reader)?);
        let field = |col: usize| {
            record
                .get(col)
                .and_then(|f| std::str::from_utf8(f).ok())
                .map(Cow::Borrowed)
        };
        let values = KeyValues {
            first: field(first_col),
            second: second_col.and_then(field),
        };
        if judge.keeps(&values) {
            kept += 1;
            let raw = body
                .get(start..end)
                .ok_or(FilterError::Csv("record outside the body"))?;
            out.extend_from_slice(raw);
        } else {
            dropped += 1;
        }
    }
    Ok(Filtered {
        body: out,
        kept,
        dropped,
    })
}

// The reader ends a record after the `\r` of a CRLF and skips the `\n` as an empty line
// before the next one; these move the `\n` back onto the record it terminates.
fn line_end(body: &[u8], end: usize) -> usize {
    match (end.checked_sub(1).and_then(|i| body.get(i)), body.get(end)) {
        (Some(b'\r'), Some(b'\n')) => end + 1,
        _ => end,
    }
}

fn line_start(body: &[u8], start: usize) -> usize {
    match (
        start.checked_sub(1).and_then(|i| body.get(i)),
        body.get(start),
    ) {
        (Some(b'\r'), Some(b'\n')) => start + 1,
        _ => start,
    }
}

fn position(reader: &csv::Reader<&[u8]>) -> Result<usize, FilterError> {
    usize::try_from(reader.position().byte()).map_err(|_| FilterError::Csv("offset overflow"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Visibility;
    use crate::codes::{SwaCode, Workstream};
    use crate::filter::policy::RowKey;

    fn run(body: &str) -> Result<Filtered, FilterError> {
        let key = RowKey::Fields {
            organisation: "swa_code".into(),
            workstream: "prefix".into(),
        };
        let visibility = Visibility::Workstreams {
            organisation: SwaCode::parse("7001").unwrap(),
            readable: vec![Workstream::parse("001").unwrap()],
        };
        filter(
            body.as_bytes(),
            &Judge {
                key: &key,
                visibility: &visibility,
                works: None,
            },
        )
    }

    #[test]
    fn keeps_header_and_readable_records_verbatim() {
        let body = "name,swa_code,prefix\r\n\
                    \"Main St, \"\"north\"\"\",7001,001\r\n\
                    other,7001,002\r\n\
                    \"multi\nline\",7001,001\r\n\
                    last,7002,001";
        let out = run(body).unwrap();
        assert_eq!(
            String::from_utf8(out.body).unwrap(),
            "name,swa_code,prefix\r\n\
             \"Main St, \"\"north\"\"\",7001,001\r\n\
             \"multi\nline\",7001,001\r\n"
        );
        assert_eq!((out.kept, out.dropped), (2, 2));
    }

    #[test]
    fn last_record_without_newline_is_kept_whole() {
        let out = run("swa_code,prefix\n7001,001").unwrap();
        assert_eq!(out.body, b"swa_code,prefix\n7001,001");
    }

    #[test]
    fn malformed_csv_is_refused() {
        assert!(matches!(
            run("swa_code,prefix\n7001,\"001\n"),
            Err(FilterError::Csv(_))
        ));
        assert!(matches!(
            run("swa_code,prefix\n7001,001\n7001\n"),
            Err(FilterError::CsvSyntax(_))
        ));
        assert!(matches!(
            run("name,prefix\n7001,001\n"),
            Err(FilterError::CsvColumn(_))
        ));
        assert!(matches!(run(""), Err(FilterError::CsvColumn(_))));
        assert!(matches!(
            run("swa_code,swa_code,prefix\n"),
            Err(FilterError::CsvColumn(_))
        ));
    }
}
