//! The CESQL tokenizer: turns the expression text into [`Token`]s.
//!
//! Words (`[A-Za-z0-9_]+`) are kept as written; the parser decides whether a word is
//! a keyword, an attribute identifier or a function name, because that depends on
//! what follows it. A word made only of digits is an integer literal. Whitespace is
//! what the reference grammar skips: space, tab, carriage return and line feed.

use super::ParseError;

/// What a token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tok<'s> {
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `%`
    Percent,
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `<>`
    LtGt,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// Unsigned digits of an integer literal.
    Int(&'s str),
    /// A string literal, its escapes already decoded.
    Str(String),
    /// A keyword, identifier or function name, as written.
    Word(&'s str),
    /// The end of the text.
    Eof,
}

impl Tok<'_> {
    /// How the token reads in an error message.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Percent => "`%`".into(),
            Tok::Eq => "`=`".into(),
            Tok::NotEq => "`!=`".into(),
            Tok::LtGt => "`<>`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Int(digits) => format!("integer `{digits}`"),
            Tok::Str(_) => "a string literal".into(),
            Tok::Word(word) => format!("`{word}`"),
            Tok::Eof => "the end of the expression".into(),
        }
    }
}

/// A token and where it starts and ends (byte offsets into the text).
#[derive(Clone, Debug)]
pub(super) struct Token<'s> {
    /// What it is.
    pub(super) tok: Tok<'s>,
    /// Byte offset of its first character.
    pub(super) start: usize,
    /// Byte offset just past its last character.
    pub(super) end: usize,
}

/// The 1-based character column of byte offset `at` in `text`.
pub(super) fn column(text: &str, at: usize) -> usize {
    text.get(..at)
        .map_or(text.len(), |before| before.chars().count())
        + 1
}

/// A parse error at byte offset `at`.
pub(super) fn error(text: &str, at: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        message: message.into(),
        column: column(text, at),
        kind: super::ErrorKind::Parse,
    }
}

/// Splits `text` into tokens, ending with [`Tok::Eof`].
pub(super) fn tokenize(text: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let b = bytes[i];
        let simple = |tok, len: usize| (tok, start + len);
        let (tok, end) = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => simple(Tok::LParen, 1),
            b')' => simple(Tok::RParen, 1),
            b',' => simple(Tok::Comma, 1),
            b'+' => simple(Tok::Plus, 1),
            b'-' => simple(Tok::Minus, 1),
            b'*' => simple(Tok::Star, 1),
            b'/' => simple(Tok::Slash, 1),
            b'%' => simple(Tok::Percent, 1),
            b'=' => simple(Tok::Eq, 1),
            b'!' if bytes.get(i + 1) == Some(&b'=') => simple(Tok::NotEq, 2),
            b'<' => match bytes.get(i + 1) {
                Some(b'>') => simple(Tok::LtGt, 2),
                Some(b'=') => simple(Tok::Le, 2),
                _ => simple(Tok::Lt, 1),
            },
            b'>' => match bytes.get(i + 1) {
                Some(b'=') => simple(Tok::Ge, 2),
                _ => simple(Tok::Gt, 1),
            },
            b'\'' | b'"' => string_literal(text, start)?,
            b if b.is_ascii_alphanumeric() || b == b'_' => {
                let mut end = i + 1;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                let word = &text[start..end];
                if word.bytes().all(|b| b.is_ascii_digit()) {
                    (Tok::Int(word), end)
                } else {
                    (Tok::Word(word), end)
                }
            }
            _ => {
                let c = text[start..].chars().next().unwrap_or('\u{FFFD}');
                return Err(error(text, start, format!("unexpected character {c:?}")));
            }
        };
        tokens.push(Token { tok, start, end });
        i = end;
    }
    tokens.push(Token {
        tok: Tok::Eof,
        start: text.len(),
        end: text.len(),
    });
    Ok(tokens)
}

/// Reads the string literal opening at byte `start` (a `'` or `"`).
///
/// As in the reference grammar, a backslash and the character after it always stay
/// together, and only `\'` (in `'...'`) or `\"` (in `"..."`) is decoded, to the bare
/// quote: every other backslash is kept as it is, so `'a\%'` is the three characters
/// `a\%` (which a LIKE pattern then reads as a literal `%`).
fn string_literal(text: &str, start: usize) -> Result<(Tok<'_>, usize), ParseError> {
    let quote = text.as_bytes()[start] as char;
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        if c == quote {
            return Ok((Tok::Str(value), start + 1 + offset + 1));
        }
        if c == '\\' {
            match chars.next() {
                Some((_, escaped)) if escaped == quote => value.push(quote),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            }
        } else {
            value.push(c);
        }
    }
    Err(error(text, start, "unterminated string literal"))
}
