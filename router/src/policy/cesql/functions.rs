//! The built-in functions of section 3.5, resolved by name and arity at parse time.
//!
//! Arguments arrive already evaluated; each function casts them to its parameter
//! types (a failed cast is the function's own `cast` error, computed on with the zero
//! value, as section 3.4 describes) and returns its value, or its value together
//! with the error it raised.

use super::eval::{Casts, Outcome, to_boolean, to_integer, to_string};
use super::{ErrorKind, EvalError, Value};
use std::borrow::Cow;

/// A built-in function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Function {
    /// `LENGTH(x)`: characters in `x`.
    Length,
    /// `CONCAT(x1, ...)`.
    Concat,
    /// `CONCAT_WS(delimiter, x1, ...)`.
    ConcatWs,
    /// `LOWER(x)`.
    Lower,
    /// `UPPER(x)`.
    Upper,
    /// `TRIM(x)`.
    Trim,
    /// `LEFT(x, n)`.
    Left,
    /// `RIGHT(x, n)`.
    Right,
    /// `SUBSTRING(x, pos)` and `SUBSTRING(x, pos, len)`.
    Substring,
    /// `ABS(x)`.
    Abs,
    /// `INT(x)`.
    Int,
    /// `BOOL(x)`.
    Bool,
    /// `STRING(x)`.
    String,
    /// `IS_INT(x)`: whether `x` casts to an Integer.
    IsInt,
    /// `IS_BOOL(x)`: whether `x` casts to a Boolean.
    IsBool,
}

impl Function {
    /// The function called `name` (uppercase) with `arity` arguments, if any.
    pub(super) fn resolve(name: &str, arity: usize) -> Option<Self> {
        Some(match (name, arity) {
            ("LENGTH", 1) => Self::Length,
            ("CONCAT", _) => Self::Concat,
            ("CONCAT_WS", 1..) => Self::ConcatWs,
            ("LOWER", 1) => Self::Lower,
            ("UPPER", 1) => Self::Upper,
            ("TRIM", 1) => Self::Trim,
            ("LEFT", 2) => Self::Left,
            ("RIGHT", 2) => Self::Right,
            ("SUBSTRING", 2 | 3) => Self::Substring,
            ("ABS", 1) => Self::Abs,
            ("INT", 1) => Self::Int,
            ("BOOL", 1) => Self::Bool,
            ("STRING", 1) => Self::String,
            ("IS_INT", 1) => Self::IsInt,
            ("IS_BOOL", 1) => Self::IsBool,
            _ => return None,
        })
    }

    /// The name of the type the function returns.
    pub(super) fn return_type(self) -> &'static str {
        match self {
            Self::Length | Self::Abs | Self::Int => "Integer",
            Self::Bool | Self::IsInt | Self::IsBool => "Boolean",
            _ => "String",
        }
    }

    /// The zero value of the return type, yielded when an argument raised an error.
    pub(super) fn zero(self) -> Value<'static> {
        match self.return_type() {
            "Integer" => Value::Integer(0),
            "Boolean" => Value::Boolean(false),
            _ => Value::String(Cow::Borrowed("")),
        }
    }

    /// Calls the function with its evaluated arguments (as many as `resolve`
    /// accepted).
    pub(super) fn call<'e>(self, args: Vec<Value<'e>>) -> Outcome<'e> {
        let mut casts = Casts::default();
        let mut args = args.into_iter();
        let value = match self {
            Self::Length => {
                let x = to_string(arg(&mut args));
                Value::Integer(i32::try_from(x.chars().count()).unwrap_or(i32::MAX))
            }
            Self::Concat => {
                let mut out = String::new();
                for arg in args {
                    out.push_str(&to_string(arg));
                }
                Value::String(Cow::Owned(out))
            }
            Self::ConcatWs => {
                let delimiter = to_string(arg(&mut args));
                let parts: Vec<Cow<'e, str>> = args.map(to_string).collect();
                Value::String(Cow::Owned(parts.join(&*delimiter)))
            }
            Self::Lower => Value::String(Cow::Owned(to_string(arg(&mut args)).to_lowercase())),
            Self::Upper => Value::String(Cow::Owned(to_string(arg(&mut args)).to_uppercase())),
            Self::Trim => match to_string(arg(&mut args)) {
                Cow::Borrowed(s) => Value::String(Cow::Borrowed(s.trim())),
                Cow::Owned(s) => Value::String(Cow::Owned(s.trim().to_owned())),
            },
            Self::Left | Self::Right => {
                let x = to_string(arg(&mut args));
                let n = casts.integer(arg(&mut args));
                let Ok(n) = usize::try_from(n) else {
                    return casts.finish_with(
                        Value::String(x),
                        EvalError::new(
                            ErrorKind::FunctionEvaluation,
                            format!("{}: the length {n} is negative", self.name()),
                        ),
                    );
                };
                let count = x.chars().count();
                let kept = if self == Self::Left {
                    take_chars(&x, 0, n)
                } else {
                    take_chars(&x, count.saturating_sub(n), n)
                };
                Value::String(Cow::Owned(kept.to_owned()))
            }
            Self::Substring => {
                let x = to_string(arg(&mut args));
                let pos = casts.integer(arg(&mut args));
                let len = args.next().map(|len| casts.integer(len));
                return match substring(&x, pos, len) {
                    Ok(s) => casts.finish(Value::String(Cow::Owned(s))),
                    Err((value, error)) => casts.finish_with(value, error),
                };
            }
            Self::Abs => {
                let x = casts.integer(arg(&mut args));
                match x.checked_abs() {
                    Some(abs) => Value::Integer(abs),
                    None => {
                        return casts.finish_with(
                            Value::Integer(i32::MAX),
                            EvalError::new(ErrorKind::Math, format!("ABS({x}) overflows 32 bits")),
                        );
                    }
                }
            }
            Self::Int => Value::Integer(casts.integer(arg(&mut args))),
            Self::Bool => Value::Boolean(match arg(&mut args) {
                // Explicitly, unlike the implicit cast, an Integer is a Boolean: 0 is
                // FALSE, anything else TRUE (the TCK's `BOOL(-50)`).
                Value::Integer(i) => i != 0,
                other => casts.boolean(other),
            }),
            Self::String => Value::String(to_string(arg(&mut args))),
            Self::IsInt => Value::Boolean(to_integer(arg(&mut args)).is_ok()),
            Self::IsBool => Value::Boolean(to_boolean(arg(&mut args)).is_ok()),
        };
        casts.finish(value)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Length => "LENGTH",
            Self::Concat => "CONCAT",
            Self::ConcatWs => "CONCAT_WS",
            Self::Lower => "LOWER",
            Self::Upper => "UPPER",
            Self::Trim => "TRIM",
            Self::Left => "LEFT",
            Self::Right => "RIGHT",
            Self::Substring => "SUBSTRING",
            Self::Abs => "ABS",
            Self::Int => "INT",
            Self::Bool => "BOOL",
            Self::String => "STRING",
            Self::IsInt => "IS_INT",
            Self::IsBool => "IS_BOOL",
        }
    }
}

/// The next argument; `resolve` guarantees there is one.
fn arg<'e>(args: &mut std::vec::IntoIter<Value<'e>>) -> Value<'e> {
    args.next().unwrap_or(Value::Boolean(false))
}

/// Up to `n` characters of `s` from character index `start`.
fn take_chars(s: &str, start: usize, n: usize) -> &str {
    let byte = |chars: usize| s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i);
    let from = byte(start);
    let rest = &s[from..];
    let to = rest.char_indices().nth(n).map_or(rest.len(), |(i, _)| i);
    &rest[..to]
}

/// `SUBSTRING`: 1-based `pos`, counted from the end when negative; `0` gives `''`.
fn substring(x: &str, pos: i32, len: Option<i32>) -> Result<String, (Value<'static>, EvalError)> {
    let fail = |message: String| {
        Err((
            Value::String(Cow::Borrowed("")),
            EvalError::new(ErrorKind::FunctionEvaluation, message),
        ))
    };
    let count = i64::try_from(x.chars().count()).unwrap_or(i64::MAX);
    let p = i64::from(pos);
    if p > count || p < -count {
        return fail(format!(
            "SUBSTRING: position {pos} is outside a string of {count} characters"
        ));
    }
    if let Some(len) = len
        && len < 0
    {
        return fail(format!("SUBSTRING: the length {len} is negative"));
    }
    if p == 0 {
        return Ok(String::new());
    }
    let start = if p > 0 { p - 1 } else { count + p };
    let start = usize::try_from(start).unwrap_or(0);
    let n = len.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(0));
    Ok(take_chars(x, start, n).to_owned())
}

#[cfg(test)]
mod tests {
    use super::take_chars;

    #[test]
    fn take_chars_counts_characters_not_bytes() {
        assert_eq!(take_chars("é€xy", 1, 2), "€x");
        assert_eq!(take_chars("abc", 5, 2), "");
        assert_eq!(take_chars("abc", 0, usize::MAX), "abc");
    }
}
