//! A grants document that is not JSON of the right shape: where (the path into the document
//! and the line and column) and what. Its own type rather than serde's because the works of a
//! streamed document are parsed in chunks, apart from the rest of it: the path and position
//! serde gives inside a chunk, or in the rest with the chunks taken out, are moved back to
//! where they are in the document before anyone sees them.

use std::fmt;

#[derive(Debug)]
pub struct JsonError {
    /// `works[12].promoter`; `.` for the document itself.
    path: String,
    /// serde's message without its position.
    message: String,
    /// 1-based; 0 when serde gave no position (an I/O error, a custom one).
    line: usize,
    column: usize,
}

impl JsonError {
    /// Where in the document the problem is, as `works[12].promoter` (`.` for the top level).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, without where.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn line(&self) -> usize {
        self.line
    }

    pub fn column(&self) -> usize {
        self.column
    }

    /// `e` at `path`, at the position `at` gives for serde's (unchanged outside a split).
    pub(super) fn new(
        path: String,
        e: &serde_json::Error,
        at: impl FnOnce(usize, usize) -> (usize, usize),
    ) -> JsonError {
        let mut message = e.to_string();
        let (line, column) = if e.line() == 0 {
            (0, 0)
        } else {
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            if message.ends_with(&suffix) {
                message.truncate(message.len() - suffix.len());
            }
            at(e.line(), e.column())
        };
        JsonError {
            path,
            message,
            line,
            column,
        }
    }

    /// A problem found outside serde, at `line` and `column`.
    pub(super) fn at(path: String, message: &str, line: usize, column: usize) -> JsonError {
        JsonError {
            path,
            message: message.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() && self.path != "." {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if self.line != 0 {
            write!(f, " at line {} column {}", self.line, self.column)?;
        }
        Ok(())
    }
}

impl std::error::Error for JsonError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_error(doc: &str) -> serde_path_to_error::Error<serde_json::Error> {
        let de = &mut serde_json::Deserializer::from_str(doc);
        match serde_path_to_error::deserialize::<_, Vec<u32>>(de) {
            Err(e) => e,
            Ok(v) => panic!("{doc} parsed: {v:?}"),
        }
    }

    #[test]
    fn reads_as_serde_path_to_error_does_when_nothing_moves() {
        for doc in ["[1,\"x\"]", "[1,", "[1 2]", "{}"] {
            let e = serde_error(doc);
            let expected = e.to_string();
            let ours = JsonError::new(e.path().to_string(), e.inner(), |l, c| (l, c));
            assert_eq!(ours.to_string(), expected, "{doc}");
        }
    }

    #[test]
    fn a_moved_position_replaces_serdes() {
        let e = serde_error("[1,\"x\"]");
        let ours = JsonError::new(e.path().to_string(), e.inner(), |l, c| (l + 10, c + 100));
        assert_eq!(ours.path(), "[1]");
        assert_eq!((ours.line(), ours.column()), (11, 106));
        assert!(
            ours.to_string().ends_with(" at line 11 column 106"),
            "{ours}"
        );
        assert_eq!(ours.to_string().matches(" at line ").count(), 1, "{ours}");
    }
}
