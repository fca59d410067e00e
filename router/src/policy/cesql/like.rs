//! LIKE patterns: `%` matches any run of characters (possibly empty), `_` exactly
//! one character, and `\%` / `\_` a literal `%` / `_`. Every other character,
//! including a backslash not followed by `%` or `_`, matches itself, case-sensitively.
//!
//! Patterns are compiled once, at parse time. Matching is the classic greedy
//! wildcard algorithm with backtracking to the last `%`: O(text × pattern) in the
//! worst case, never exponential, and it does not allocate.

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// These characters, in order.
    Literal(Box<str>),
    /// `_`: any one character.
    One,
    /// `%`: any run of characters.
    Many,
}

/// A compiled LIKE pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pattern {
    pieces: Vec<Piece>,
}

impl Pattern {
    /// Compiles the pattern text (the decoded string literal).
    pub(super) fn compile(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let wildcard = match c {
                '\\' => match chars.peek() {
                    Some(&escaped @ ('%' | '_')) => {
                        chars.next();
                        literal.push(escaped);
                        None
                    }
                    _ => {
                        literal.push('\\');
                        None
                    }
                },
                '%' => Some(Piece::Many),
                '_' => Some(Piece::One),
                other => {
                    literal.push(other);
                    None
                }
            };
            if let Some(wildcard) = wildcard {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
                }
                // `%%` is the same as `%`.
                if !(wildcard == Piece::Many && pieces.last() == Some(&Piece::Many)) {
                    pieces.push(wildcard);
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into()));
        }
        Self { pieces }
    }

    /// The literal text every match starts with, when the pattern is exactly that
    /// text followed by one `%` (`'com.example.%'`).
    pub(super) fn literal_prefix(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [Piece::Literal(prefix), Piece::Many] => Some(prefix),
            _ => None,
        }
    }

    /// Whether `text` matches the whole pattern.
    pub(super) fn matches(&self, text: &str) -> bool {
        let pieces = &self.pieces;
        let (mut p, mut t) = (0, 0);
        // After the last `%` seen: the piece following it, and where in the text that
        // piece's match was last attempted from.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let advanced = match pieces.get(p) {
                Some(Piece::Many) => {
                    resume = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Some(Piece::One) => match next_char_len(text, t) {
                    Some(len) => {
                        t += len;
                        true
                    }
                    None => false,
                },
                Some(Piece::Literal(lit))
                    if text.get(t..).is_some_and(|rest| rest.starts_with(&**lit)) =>
                {
                    t += lit.len();
                    true
                }
                Some(Piece::Literal(_)) => false,
                None if t == text.len() => return true,
                None => false,
            };
            if advanced {
                p += 1;
                continue;
            }
            // Mismatch: let the last `%` swallow one more character and retry.
            match resume {
                Some((after_many, from)) => match next_char_len(text, from) {
                    Some(len) => {
                        resume = Some((after_many, from + len));
                        p = after_many;
                        t = from + len;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}

/// The byte length of the character starting at byte `at`, if there is one.
fn next_char_len(text: &str, at: usize) -> Option<usize> {
    text.get(at..)?.chars().next().map(char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn like(text: &str, pattern: &str) -> bool {
        Pattern::compile(pattern).matches(text)
    }

    #[test]
    fn wildcards_escapes_and_unicode() {
        assert!(like("abc", "abc"));
        assert!(!like("abcd", "abc"));
        assert!(like("", "%"));
        assert!(like("", "%%"));
        assert!(!like("", "_"));
        assert!(like("azzzbzzzc", "a%b%c"));
        assert!(like("abcbc", "a%bc"));
        assert!(!like("abcb", "a%bc"));
        assert!(like("a%b", "a\\%b"));
        assert!(!like("azb", "a\\%b"));
        assert!(like("a_b", "a\\_b"));
        assert!(like("ab\\c", "ab\\c"));
        assert!(like("a\\", "a\\"));
        assert!(like("é€x", "__x"));
        assert!(like("é€x", "%€_"));
        assert!(!like("é", "__"));
        assert!(like("mississippi", "%iss%ppi"));
        assert!(!like("mississippi", "%iss%ppx"));
    }
}
