//! The tokens file: one `caller-name token` per line, `#` comments and blank lines ignored.
//! Tokens are compared in constant time and never logged or shown: errors name the file and
//! the line number only.

use std::fmt;
use std::path::Path;

use subtle::ConstantTimeEq;

/// The callers a provider knows, by token.
#[derive(Default)]
pub(crate) struct Tokens {
    entries: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let callers: Vec<&str> = self.entries.iter().map(|(c, _)| c.as_str()).collect();
        f.debug_struct("Tokens").field("callers", &callers).finish()
    }
}

/// A tokens file that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("tokens file {file}: {message}")]
pub(crate) struct TokensError {
    pub(crate) file: String,
    pub(crate) message: String,
}

impl Tokens {
    /// Reads and parses `path`.
    pub(crate) fn load(path: &Path) -> Result<(Tokens, String), TokensError> {
        let fail = |message: String| TokensError {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let tokens = Tokens::parse(&text).map_err(fail)?;
        Ok((tokens, text))
    }

    /// Parses the text of a tokens file.
    pub(crate) fn parse(text: &str) -> Result<Tokens, String> {
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(caller), Some(token), None) => {
                    entries.push((caller.to_string(), token.as_bytes().to_vec()))
                }
                _ => return Err(format!("line {}: expected `caller-name token`", number + 1)),
            }
        }
        Ok(Tokens { entries })
    }

    /// The caller whose token `presented` is. Every entry is compared, in constant time,
    /// so the time taken says nothing about which token (or how much of one) matched.
    pub(crate) fn caller(&self, presented: &[u8]) -> Option<&str> {
        let mut found = None;
        for (caller, token) in &self.entries {
            if bool::from(token.as_slice().ct_eq(presented)) && found.is_none() {
                found = Some(caller.as_str());
            }
        }
        found
    }

    /// How many callers the file names.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_caller_of_a_token_and_no_other() {
        let tokens = Tokens::parse("# callers\norders s3cret-1\n\nbilling  s3cret-2\n").unwrap();
        assert_eq!(tokens.caller(b"s3cret-1"), Some("orders"));
        assert_eq!(tokens.caller(b"s3cret-2"), Some("billing"));
        assert_eq!(tokens.caller(b"s3cret-"), None);
        assert_eq!(tokens.caller(b""), None);
        assert_eq!(tokens.len(), 2);
    }

    #[test]
    fn a_bad_line_is_named_by_number_without_its_token() {
        let err = Tokens::parse("orders ok\nbilling s3cret extra\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        assert!(!format!("{:?}", Tokens::parse("a s3cret").unwrap()).contains("s3cret"));
    }
}
