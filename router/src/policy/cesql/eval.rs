//! Evaluation of a parsed expression against one event, and the implicit casts of
//! section 3.7.
//!
//! Every node yields an [`Outcome`]: its value, or its value together with the error
//! it raised. An operator's *own* error (a failed cast of an operand, a division by
//! zero) comes with the value the operator computed on regardless; an error in an
//! *operand* makes the operator yield the zero value of its type without computing,
//! so `NOT 10` is `TRUE` with a cast error but `NOT missing` is `FALSE`, as the TCK
//! requires. Nodes borrow attribute values and string literals instead of copying
//! them.

use super::parser::{BinaryOp, LogicOp, Node};
use super::{ErrorKind, EvalError, Value};
use crate::event::Event;
use std::borrow::Cow;

/// A value, or a value together with the first error raised computing it.
pub(super) type Outcome<'a> = Result<Value<'a>, (Value<'a>, EvalError)>;

/// Evaluates an operand: on error, the calling operator yields `$zero` at once.
macro_rules! operand {
    ($outcome:expr, $zero:expr) => {
        match $outcome {
            Ok(value) => value,
            Err((_, error)) => return Err(($zero, error)),
        }
    };
}

const FALSE: Value<'static> = Value::Boolean(false);

/// Evaluates `node` against `event`. Recursion is bounded by the parser's
/// [`MAX_DEPTH`](super::MAX_DEPTH).
pub(super) fn eval<'a>(node: &'a Node, event: &'a Event) -> Outcome<'a> {
    match node {
        Node::Literal(value) => Ok(match value {
            Value::String(s) => Value::String(Cow::Borrowed(s)),
            other => other.clone(),
        }),
        Node::Attribute(name) => match event.attribute(name) {
            Some(value) => Ok(Value::String(Cow::Borrowed(value))),
            None => Err((
                FALSE,
                EvalError::new(
                    ErrorKind::MissingAttribute,
                    format!("the event has no attribute `{name}`"),
                ),
            )),
        },
        Node::Exists(name) => Ok(Value::Boolean(event.attribute(name).is_some())),
        Node::Not(inner) => {
            let value = operand!(eval(inner, event), FALSE);
            let mut casts = Casts::default();
            let b = casts.boolean(value);
            casts.finish(Value::Boolean(!b))
        }
        Node::Negate(inner) => {
            let value = operand!(eval(inner, event), Value::Integer(0));
            let mut casts = Casts::default();
            let i = casts.integer(value);
            match i.checked_neg() {
                Some(negated) => casts.finish(Value::Integer(negated)),
                None => casts.finish_with(
                    Value::Integer(i32::MAX),
                    EvalError::new(ErrorKind::Math, format!("-({i}) overflows 32 bits")),
                ),
            }
        }
        Node::Binary { op, left, right } => binary(*op, left, right, event),
        Node::Logic { op, operands } => logic(*op, operands, event),
        Node::Like {
            operand: inner,
            pattern,
            negated,
        } => {
            let value = operand!(eval(inner, event), FALSE);
            let text = to_string(value);
            Ok(Value::Boolean(pattern.matches(&text) != *negated))
        }
        Node::In {
            operand: inner,
            set,
            negated,
        } => {
            let value = operand!(eval(inner, event), FALSE);
            let mut casts = Casts::default();
            let mut found = false;
            for element in set {
                let element = operand!(eval(element, event), FALSE);
                // Section 3.7: the left operand's type is the target of the casts.
                if casts.equal(element, &value) {
                    found = true;
                    break;
                }
            }
            casts.finish(Value::Boolean(found != *negated))
        }
        Node::Call { function, args } => {
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                values.push(operand!(eval(arg, event), function.zero()));
            }
            function.call(values)
        }
    }
}

fn binary<'a>(op: BinaryOp, left: &'a Node, right: &'a Node, event: &'a Event) -> Outcome<'a> {
    let zero = match op {
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem | BinaryOp::Add | BinaryOp::Sub => {
            Value::Integer(0)
        }
        _ => FALSE,
    };
    let l = operand!(eval(left, event), zero.clone());
    let r = operand!(eval(right, event), zero);
    let mut casts = Casts::default();
    let math = |value: Option<i32>, fallback: i32, why: &str| match value {
        Some(v) => Ok(v),
        None => Err((
            fallback,
            EvalError::new(ErrorKind::Math, format!("{why} in `{}`", op.symbol())),
        )),
    };
    let integer = match op {
        BinaryOp::Eq | BinaryOp::NotEq => {
            // `=` is overloaded; the right operand's type picks the overload and the
            // left operand is cast to it, so `TRUE = 'TRUE'` compares strings.
            let equal = casts.equal(l, &r);
            return casts.finish(Value::Boolean(equal == (op == BinaryOp::Eq)));
        }
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            let (x, y) = (casts.integer(l), casts.integer(r));
            let result = match op {
                BinaryOp::Lt => x < y,
                BinaryOp::Le => x <= y,
                BinaryOp::Gt => x > y,
                _ => x >= y,
            };
            return casts.finish(Value::Boolean(result));
        }
        BinaryOp::Mul => {
            let (x, y) = (casts.integer(l), casts.integer(r));
            math(x.checked_mul(y), x.wrapping_mul(y), "overflow")
        }
        BinaryOp::Add => {
            let (x, y) = (casts.integer(l), casts.integer(r));
            math(x.checked_add(y), x.wrapping_add(y), "overflow")
        }
        BinaryOp::Sub => {
            let (x, y) = (casts.integer(l), casts.integer(r));
            math(x.checked_sub(y), x.wrapping_sub(y), "overflow")
        }
        BinaryOp::Div | BinaryOp::Rem => {
            let (x, y) = (casts.integer(l), casts.integer(r));
            if y == 0 {
                math(None, 0, "division by zero")
            } else if op == BinaryOp::Div {
                math(x.checked_div(y), x.wrapping_div(y), "overflow")
            } else {
                math(x.checked_rem(y), 0, "overflow")
            }
        }
    };
    match integer {
        Ok(v) => casts.finish(Value::Integer(v)),
        Err((v, error)) => casts.finish_with(Value::Integer(v), error),
    }
}

/// A chain `a OP b OP c`, evaluated exactly as the nested `(a OP b) OP c`: an error
/// in one link makes every later link yield `FALSE` without evaluating its right
/// operand.
fn logic<'a>(op: LogicOp, operands: &'a [Node], event: &'a Event) -> Outcome<'a> {
    let mut nodes = operands.iter();
    let Some(first) = nodes.next() else {
        return Ok(FALSE);
    };
    let mut left = operand!(eval(first, event), FALSE);
    let mut carried: Option<EvalError> = None;
    for right in nodes {
        if let Some(error) = carried.take() {
            return Err((FALSE, error));
        }
        let mut casts = Casts::default();
        let l = casts.boolean(left);
        let result = match (op, l) {
            (LogicOp::And, false) => false,
            (LogicOp::Or, true) => true,
            _ => {
                let r = operand!(eval(right, event), FALSE);
                let r = casts.boolean(r);
                match op {
                    LogicOp::And => r,
                    LogicOp::Or => r,
                    LogicOp::Xor => l != r,
                }
            }
        };
        left = Value::Boolean(result);
        carried = casts.error;
    }
    match carried {
        Some(error) => Err((left, error)),
        None => Ok(left),
    }
}

/// An operator's casts of its operands, keeping the first failure: a value that does
/// not cast becomes the zero value of the target type.
#[derive(Default)]
pub(super) struct Casts {
    error: Option<EvalError>,
}

impl Casts {
    pub(super) fn integer(&mut self, value: Value<'_>) -> i32 {
        to_integer(value).unwrap_or_else(|e| {
            self.error.get_or_insert(e);
            0
        })
    }

    pub(super) fn boolean(&mut self, value: Value<'_>) -> bool {
        to_boolean(value).unwrap_or_else(|e| {
            self.error.get_or_insert(e);
            false
        })
    }

    /// `x = target`, with `x` cast to the type of `target`.
    fn equal(&mut self, x: Value<'_>, target: &Value<'_>) -> bool {
        match target {
            Value::String(t) => to_string(x) == **t,
            Value::Integer(t) => self.integer(x) == *t,
            Value::Boolean(t) => self.boolean(x) == *t,
        }
    }

    pub(super) fn finish(self, value: Value<'_>) -> Outcome<'_> {
        match self.error {
            Some(error) => Err((value, error)),
            None => Ok(value),
        }
    }

    /// The outcome when the operator raised `error` itself; a cast error raised
    /// before it comes first.
    pub(super) fn finish_with(self, value: Value<'_>, error: EvalError) -> Outcome<'_> {
        Err((value, self.error.unwrap_or(error)))
    }
}

/// The implicit cast to Integer: a base-10 string in the 32-bit range, or a Boolean
/// as 1 or 0.
pub(super) fn to_integer(value: Value<'_>) -> Result<i32, EvalError> {
    match value {
        Value::Integer(i) => Ok(i),
        Value::Boolean(b) => Ok(i32::from(b)),
        Value::String(s) => s.parse().map_err(|_| {
            EvalError::new(
                ErrorKind::Cast,
                format!("cannot cast {s:?} to Integer (a base-10 32-bit integer)"),
            )
        }),
    }
}

/// The implicit cast to Boolean: `true` or `false` in any case. An Integer does not
/// cast implicitly (only `BOOL(x)` converts one).
pub(super) fn to_boolean(value: Value<'_>) -> Result<bool, EvalError> {
    match value {
        Value::Boolean(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(EvalError::new(
            ErrorKind::Cast,
            format!("cannot cast {other} to Boolean"),
        )),
    }
}

/// The cast to String, which never fails.
pub(super) fn to_string(value: Value<'_>) -> Cow<'_, str> {
    match value {
        Value::String(s) => s,
        Value::Integer(i) => Cow::Owned(i.to_string()),
        Value::Boolean(b) => Cow::Borrowed(if b { "true" } else { "false" }),
    }
}
