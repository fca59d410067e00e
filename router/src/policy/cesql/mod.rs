//! CloudEvents SQL (CESQL) v1: the `sql` filter dialect of the Subscriptions API.
//!
//! An [`Expression`] is parsed once, at load time, into a tree that is evaluated per
//! event without copying attribute values. Evaluation follows the specification's
//! error model: every operator is total, so an expression always yields a value,
//! together with the first error it raised. An operator whose operand raised an error
//! yields the zero value of its own type (`false`, `0`, `''`) and passes the error up;
//! that is how `true AND (missing = '')` comes out `false` as section 3.2 requires.
//! A filter matches only when the value is `true` and no error was raised.
//!
//! Calls of functions that do not exist are refused when parsing (section 3.3 asks
//! for errors to be found at compile time where possible), with
//! [`ErrorKind::MissingFunction`].

mod eval;
mod functions;
mod lexer;
mod like;
mod parser;

use crate::event::Event;
use parser::Node;
use std::borrow::Cow;
use std::fmt;

pub use parser::MAX_DEPTH;

/// A CESQL value: the language has exactly three types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// `TRUE` or `FALSE`.
    Boolean(bool),
    /// A signed 32-bit integer.
    Integer(i32),
    /// A string, borrowed from the event where it can be.
    String(Cow<'a, str>),
}

impl Value<'_> {
    /// The name of the value's type, as the specification writes it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Boolean(_) => "Boolean",
            Self::Integer(_) => "Integer",
            Self::String(_) => "String",
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean(b) => write!(f, "{}", if *b { "TRUE" } else { "FALSE" }),
            Self::Integer(i) => write!(f, "{i}"),
            Self::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// The kinds of error the specification (and its TCK) distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The expression does not follow the grammar.
    Parse,
    /// Division or remainder by zero, or a result outside the 32-bit range.
    Math,
    /// A value could not be converted to the type an operator or function needs.
    Cast,
    /// No built-in function has this name and number of arguments.
    MissingFunction,
    /// A function was called with arguments outside its domain.
    FunctionEvaluation,
    /// The event has no such attribute.
    MissingAttribute,
}

impl ErrorKind {
    /// The TCK's name for the kind (`parse`, `math`, `missingAttribute` ...).
    pub fn tck_name(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Math => "math",
            Self::Cast => "cast",
            Self::MissingFunction => "missingFunction",
            Self::FunctionEvaluation => "functionEvaluation",
            Self::MissingAttribute => "missingAttribute",
        }
    }
}

/// An expression that cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// The 1-based column (in characters) where the problem starts.
    pub column: usize,
    /// [`ErrorKind::Parse`], or [`ErrorKind::MissingFunction`] for an unknown call.
    pub kind: ErrorKind,
}

/// An error raised while evaluating an expression against an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// Which kind of error.
    pub kind: ErrorKind,
    /// What happened, naming the attribute, operator or function.
    pub message: String,
}

impl EvalError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The outcome of evaluating an expression: its value, and the first error raised on
/// the way, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation<'e> {
    /// The value (a zero value where an error made the real one undefined).
    pub value: Value<'e>,
    /// The first error raised.
    pub error: Option<EvalError>,
}

/// A compiled CESQL expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expression {
    text: Box<str>,
    root: Node,
}

impl Expression {
    /// Compiles `text`. Keywords, function names and attribute names are matched
    /// case-insensitively; string literals keep their case.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Ok(Self {
            text: text.into(),
            root: parser::parse(text)?,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates the expression against `event`.
    pub fn evaluate<'e>(&'e self, event: &'e Event) -> Evaluation<'e> {
        match eval::eval(&self.root, event) {
            Ok(value) => Evaluation { value, error: None },
            Err((value, error)) => Evaluation {
                value,
                error: Some(error),
            },
        }
    }

    /// Whether `event` passes the expression as a filter: the value is `TRUE` (or a
    /// string that casts to it) and evaluation raised no error.
    pub fn matches(&self, event: &Event) -> bool {
        match eval::eval(&self.root, event) {
            Ok(Value::Boolean(b)) => b,
            Ok(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            Ok(Value::Integer(_)) | Err(_) => false,
        }
    }

    /// Why `event` does not pass, or `None` when it does.
    pub fn explain(&self, event: &Event) -> Option<String> {
        if self.matches(event) {
            return None;
        }
        let outcome = self.evaluate(event);
        Some(match outcome.error {
            Some(error) => format!(
                "{} raised a {} error: {}",
                self.text,
                error.kind.tck_name(),
                error.message
            ),
            None => format!("{} evaluated to {}", self.text, outcome.value),
        })
    }

    /// The event type a matching event must have, when the expression requires one
    /// with `type = '...'` at its top level (alone or in a chain of `AND`): the key
    /// of the route index.
    pub fn required_type(&self) -> Option<&str> {
        self.root.required_type()
    }

    /// The prefix a matching event's type must start with, when the expression
    /// requires one with `type LIKE 'prefix%'` at its top level (alone or in a chain
    /// of `AND`): the key of the prefix index.
    pub fn required_type_prefix(&self) -> Option<&str> {
        self.root.required_type_prefix()
    }

    /// The static type of the expression's value, when it does not depend on the
    /// event: a filter whose value is always an Integer is refused at load.
    pub fn static_type(&self) -> Option<&'static str> {
        self.root.static_type()
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorKind, Expression, MAX_DEPTH, Value};
    use crate::event::Event;

    fn event() -> Event {
        let mut e = Event::new("1", "shop/eu", "order.created");
        e.set_extension("amount", "1500");
        e
    }

    #[test]
    fn parse_errors_give_the_column_and_kind() {
        let e = Expression::parse("type = 'a' AND").unwrap_err();
        assert_eq!((e.kind, e.column), (ErrorKind::Parse, 15), "{e}");
        let e = Expression::parse("type = 'a' OR NOPE(1)").unwrap_err();
        assert_eq!((e.kind, e.column), (ErrorKind::MissingFunction, 15), "{e}");
        let e = Expression::parse("'é' = ü").unwrap_err();
        assert_eq!(e.column, 7, "columns count characters: {e}");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}TRUE{}", "(".repeat(200), ")".repeat(200));
        let e = Expression::parse(&deep).unwrap_err();
        assert!(e.message.contains(&MAX_DEPTH.to_string()), "{e}");
        let long_chain = vec!["TRUE"; 10_000].join(" AND ");
        assert!(Expression::parse(&long_chain).unwrap().matches(&event()));
    }

    #[test]
    fn matching_needs_true_and_no_error() {
        let e = event();
        assert!(Expression::parse("INT(amount) > 1000").unwrap().matches(&e));
        assert!(!Expression::parse("INT(amount) > 2000").unwrap().matches(&e));
        // `NOT 10` is TRUE, but with a cast error: not a match.
        let not10 = Expression::parse("NOT 10").unwrap();
        assert_eq!(not10.evaluate(&e).value, Value::Boolean(true));
        assert!(!not10.matches(&e));
        let missing = Expression::parse("NOT (region = 'eu')").unwrap();
        assert!(!missing.matches(&e));
        let why = missing.explain(&e).unwrap();
        assert!(
            why.contains("missingAttribute") && why.contains("region"),
            "{why}"
        );
    }

    #[test]
    fn the_type_index_key_is_found_in_and_chains_only() {
        let ty = |text: &str| {
            Expression::parse(text)
                .unwrap()
                .required_type()
                .map(str::to_owned)
        };
        assert_eq!(ty("type = 'a'").as_deref(), Some("a"));
        assert_eq!(ty("'a' = TYPE AND x = 1").as_deref(), Some("a"));
        assert_eq!(ty("x = 1 AND (type = 'b')").as_deref(), Some("b"));
        assert_eq!(ty("type = 'a' OR type = 'b'"), None);
        assert_eq!(ty("NOT (type = 'a')"), None);
        assert_eq!(ty("type != 'a'"), None);
        let prefix = |text: &str| {
            Expression::parse(text)
                .unwrap()
                .required_type_prefix()
                .map(str::to_owned)
        };
        assert_eq!(
            prefix("type LIKE 'com.%' AND x = 1").as_deref(),
            Some("com.")
        );
        assert_eq!(prefix("type LIKE 'com.%.x'"), None);
        assert_eq!(prefix("type LIKE 'com._%'"), None);
        assert_eq!(prefix("type NOT LIKE 'com.%'"), None);
        assert_eq!(prefix("type LIKE 'a\\%%'").as_deref(), Some("a%"));
    }

    /// Random token soup never panics the parser or the evaluator.
    #[test]
    fn arbitrary_input_never_panics() {
        const PIECES: [&str; 34] = [
            "(",
            ")",
            ",",
            "+",
            "-",
            "*",
            "/",
            "%",
            "=",
            "!=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
            "AND",
            "OR",
            "XOR",
            "NOT",
            "LIKE",
            "IN",
            "EXISTS",
            "TRUE",
            "'a%_\\'",
            "\"x\"",
            "2147483647",
            "-2147483648",
            "0",
            "amount",
            "type",
            "missing",
            "SUBSTRING",
            "ABS",
            "é",
        ];
        let e = event();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = next() % 12 + 1;
            let text: Vec<&str> = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            if let Ok(expression) = Expression::parse(&text.join(" ")) {
                let _ = expression.evaluate(&e);
                let _ = expression.explain(&e);
            }
        }
    }
}
