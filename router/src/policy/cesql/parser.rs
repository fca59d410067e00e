//! The CESQL parser: precedence climbing over the [`lexer`](super::lexer)'s tokens,
//! producing the [`Node`] tree the evaluator walks.
//!
//! Precedence follows section 3.6 of the specification, tightest first: function
//! invocations; the unary `NOT` and `-`; `LIKE`; `EXISTS`; `IN`; `*` `/` `%`; `+` `-`;
//! the comparisons; and `AND` `OR` `XOR`, which share one level. Operators of equal
//! precedence group left to right, so `a OR b AND c` is `(a OR b) AND c`.

use super::functions::Function;
use super::lexer::{Tok, Token, error, tokenize};
use super::like::Pattern;
use super::{ErrorKind, ParseError, Value};
use std::sync::Arc;

/// How deep an expression may nest (operators inside operators, parentheses, function
/// arguments). Deeper expressions are refused with a parse error, so neither the
/// parser nor the evaluator can run out of stack.
pub const MAX_DEPTH: u32 = 128;

/// A binary operator other than `AND`, `OR` and `XOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BinaryOp {
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `=`
    Eq,
    /// `!=` or `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl BinaryOp {
    /// The operator as written, for error messages.
    pub(super) fn symbol(self) -> &'static str {
        match self {
            Self::Mul => "*",
            Self::Div => "/",
            Self::Rem => "%",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Eq => "=",
            Self::NotEq => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    fn binding_power(self) -> u8 {
        match self {
            Self::Mul | Self::Div | Self::Rem => BP_MUL,
            Self::Add | Self::Sub => BP_ADD,
            _ => BP_CMP,
        }
    }
}

/// `AND`, `OR` or `XOR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LogicOp {
    /// `AND`, short-circuit.
    And,
    /// `OR`, short-circuit.
    Or,
    /// `XOR`.
    Xor,
}

/// A node of the compiled expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Node {
    /// A literal value.
    Literal(Value<'static>),
    /// A context attribute or extension, by its (lowercase) name.
    Attribute(Arc<str>),
    /// `EXISTS name`.
    Exists(Arc<str>),
    /// `NOT x`.
    Not(Box<Node>),
    /// `-x`.
    Negate(Box<Node>),
    /// An arithmetic or comparison operator.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Node>,
        /// Right operand.
        right: Box<Node>,
    },
    /// A left-to-right chain of the same logic operator, `a AND b AND c`: the same as
    /// the nested `(a AND b) AND c`, kept flat so long chains do not nest deeply.
    Logic {
        /// The operator.
        op: LogicOp,
        /// Two or more operands.
        operands: Vec<Node>,
    },
    /// `x [NOT] LIKE 'pattern'`.
    Like {
        /// The value matched.
        operand: Box<Node>,
        /// The compiled pattern.
        pattern: Pattern,
        /// `NOT LIKE`.
        negated: bool,
    },
    /// `x [NOT] IN (a, b, ...)`.
    In {
        /// The value looked for.
        operand: Box<Node>,
        /// The set, one or more expressions.
        set: Vec<Node>,
        /// `NOT IN`.
        negated: bool,
    },
    /// A call of a built-in function, resolved by name and arity.
    Call {
        /// Which function.
        function: Function,
        /// Its arguments, as many as it takes.
        args: Vec<Node>,
    },
}

const BP_LOGIC: u8 = 1;
const BP_CMP: u8 = 2;
const BP_ADD: u8 = 3;
const BP_MUL: u8 = 4;
const BP_IN: u8 = 5;
const BP_LIKE: u8 = 6;
const BP_UNARY: u8 = 7;

/// Keywords, matched case-insensitively. They cannot be attribute or function names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Xor,
    Not,
    Like,
    Exists,
    In,
    True,
    False,
}

fn keyword(word: &str) -> Option<Keyword> {
    const KEYWORDS: [(&str, Keyword); 9] = [
        ("AND", Keyword::And),
        ("OR", Keyword::Or),
        ("XOR", Keyword::Xor),
        ("NOT", Keyword::Not),
        ("LIKE", Keyword::Like),
        ("EXISTS", Keyword::Exists),
        ("IN", Keyword::In),
        ("TRUE", Keyword::True),
        ("FALSE", Keyword::False),
    ];
    KEYWORDS
        .iter()
        .find(|(text, _)| word.eq_ignore_ascii_case(text))
        .map(|&(_, kw)| kw)
}

/// Parses `text` into its root node. A call that matches no built-in function is a
/// parse error of kind [`ErrorKind::MissingFunction`].
pub(super) fn parse(text: &str) -> Result<Node, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
        depth: 0,
    };
    let (node, _) = parser.expression(0)?;
    let next = parser.peek_token();
    if next.tok != Tok::Eof {
        return Err(error(
            text,
            next.start,
            format!(
                "unexpected {} after a complete expression",
                next.tok.describe()
            ),
        ));
    }
    Ok(node)
}

struct Parser<'s> {
    text: &'s str,
    tokens: Vec<Token<'s>>,
    pos: usize,
    /// Current recursion depth of [`Parser::expression`].
    depth: u32,
}

impl<'s> Parser<'s> {
    fn peek_token(&self) -> &Token<'s> {
        // The token list always ends with Eof, and `pos` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek(&self) -> &Tok<'s> {
        &self.peek_token().tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok<'s> {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)].tok
    }

    fn advance(&mut self) -> Token<'s> {
        let token = self.peek_token().clone();
        if token.tok != Tok::Eof {
            self.pos += 1;
        }
        token
    }

    fn peek_keyword(&self, ahead: usize) -> Option<Keyword> {
        match self.peek_at(ahead) {
            Tok::Word(word) => keyword(word),
            _ => None,
        }
    }

    fn error_here(&self, message: impl Into<String>) -> ParseError {
        error(self.text, self.peek_token().start, message)
    }

    fn expect(&mut self, tok: &Tok<'_>, context: &str) -> Result<Token<'s>, ParseError> {
        if self.peek() == tok {
            Ok(self.advance())
        } else {
            Err(self.error_here(format!(
                "expected {} {context}, found {}",
                tok.describe(),
                self.peek().describe()
            )))
        }
    }

    fn check_depth(&self, depth: u32, at: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            Err(error(
                self.text,
                at,
                format!("expression nests too deeply (more than {MAX_DEPTH} levels)"),
            ))
        } else {
            Ok(())
        }
    }

    /// Parses an expression whose operators bind at least as tightly as `min_bp`.
    /// Returns the node and its depth.
    fn expression(&mut self, min_bp: u8) -> Result<(Node, u32), ParseError> {
        self.depth += 1;
        self.check_depth(self.depth, self.peek_token().start)?;
        let result = self.expression_inner(min_bp);
        self.depth -= 1;
        result
    }

    fn expression_inner(&mut self, min_bp: u8) -> Result<(Node, u32), ParseError> {
        let (mut lhs, mut depth) = self.prefix()?;
        loop {
            let at = self.peek_token().start;
            // `NOT` in operator position can only start `NOT LIKE` or `NOT IN`.
            let negated = self.peek_keyword(0) == Some(Keyword::Not);
            let after_not = if negated { 1 } else { 0 };
            match self.peek_keyword(after_not) {
                Some(Keyword::Like) => {
                    if BP_LIKE < min_bp {
                        break;
                    }
                    self.pos += after_not + 1;
                    let Tok::Str(pattern) = self.peek().clone() else {
                        return Err(self.error_here(format!(
                            "the pattern of LIKE must be a string literal, found {}",
                            self.peek().describe()
                        )));
                    };
                    self.advance();
                    let pattern = Pattern::compile(&pattern);
                    lhs = Node::Like {
                        operand: Box::new(lhs),
                        pattern,
                        negated,
                    };
                    depth += 1;
                }
                Some(Keyword::In) => {
                    if BP_IN < min_bp {
                        break;
                    }
                    self.pos += after_not + 1;
                    self.expect(&Tok::LParen, "to open the set of IN")?;
                    let mut set = Vec::new();
                    let mut set_depth = 0;
                    loop {
                        let (element, element_depth) = self.expression(0)?;
                        set.push(element);
                        set_depth = set_depth.max(element_depth);
                        if self.peek() == &Tok::Comma {
                            self.advance();
                        } else {
                            break;
                        }
                    }
                    self.expect(&Tok::RParen, "to close the set of IN")?;
                    lhs = Node::In {
                        operand: Box::new(lhs),
                        set,
                        negated,
                    };
                    depth = depth.max(set_depth) + 1;
                }
                _ if negated => {
                    if BP_IN < min_bp {
                        // `NOT` cannot follow here either way; let the caller report it.
                        break;
                    }
                    self.advance();
                    return Err(self.error_here(format!(
                        "expected LIKE or IN after NOT, found {}",
                        self.peek().describe()
                    )));
                }
                Some(kw @ (Keyword::And | Keyword::Or | Keyword::Xor)) => {
                    if BP_LOGIC < min_bp {
                        break;
                    }
                    self.advance();
                    let op = match kw {
                        Keyword::And => LogicOp::And,
                        Keyword::Or => LogicOp::Or,
                        _ => LogicOp::Xor,
                    };
                    let (rhs, rhs_depth) = self.expression(BP_LOGIC + 1)?;
                    match &mut lhs {
                        Node::Logic {
                            op: lhs_op,
                            operands,
                        } if *lhs_op == op => {
                            operands.push(rhs);
                            depth = depth.max(rhs_depth + 1);
                        }
                        _ => {
                            lhs = Node::Logic {
                                op,
                                operands: vec![lhs, rhs],
                            };
                            depth = depth.max(rhs_depth) + 1;
                        }
                    }
                }
                _ => {
                    let op = match self.peek() {
                        Tok::Star => BinaryOp::Mul,
                        Tok::Slash => BinaryOp::Div,
                        Tok::Percent => BinaryOp::Rem,
                        Tok::Plus => BinaryOp::Add,
                        Tok::Minus => BinaryOp::Sub,
                        Tok::Eq => BinaryOp::Eq,
                        Tok::NotEq | Tok::LtGt => BinaryOp::NotEq,
                        Tok::Lt => BinaryOp::Lt,
                        Tok::Le => BinaryOp::Le,
                        Tok::Gt => BinaryOp::Gt,
                        Tok::Ge => BinaryOp::Ge,
                        _ => break,
                    };
                    let bp = op.binding_power();
                    if bp < min_bp {
                        break;
                    }
                    self.advance();
                    let (rhs, rhs_depth) = self.expression(bp + 1)?;
                    lhs = Node::Binary {
                        op,
                        left: Box::new(lhs),
                        right: Box::new(rhs),
                    };
                    depth = depth.max(rhs_depth) + 1;
                }
            }
            self.check_depth(depth, at)?;
        }
        Ok((lhs, depth))
    }

    /// Parses what can start an expression: a literal, an attribute, a function call,
    /// a parenthesised expression, `NOT`, `-` or `EXISTS`.
    fn prefix(&mut self) -> Result<(Node, u32), ParseError> {
        let token = self.advance();
        match token.tok {
            Tok::Int(digits) => Ok((self.integer(digits, false, token.start)?, 1)),
            Tok::Str(value) => Ok((Node::Literal(Value::String(value.into())), 1)),
            Tok::LParen => {
                let inner = self.expression(0)?;
                self.expect(&Tok::RParen, "to close `(`")?;
                Ok(inner)
            }
            Tok::Minus => {
                // `-` before digits is the sign of the literal (so -2147483648 is valid).
                if let Tok::Int(digits) = *self.peek() {
                    self.advance();
                    return Ok((self.integer(digits, true, token.start)?, 1));
                }
                let (operand, depth) = self.expression(BP_UNARY)?;
                Ok((Node::Negate(Box::new(operand)), depth + 1))
            }
            Tok::Plus => match *self.peek() {
                // `+` is only the optional sign of an integer literal: `+5`.
                Tok::Int(digits) if self.peek_token().start == token.end => {
                    self.advance();
                    Ok((self.integer(digits, false, token.start)?, 1))
                }
                _ => Err(error(
                    self.text,
                    token.start,
                    "`+` must be directly followed by the digits of an integer literal",
                )),
            },
            Tok::Word(word) => self.word(word, token.start),
            other => Err(error(
                self.text,
                token.start,
                format!("expected an expression, found {}", other.describe()),
            )),
        }
    }

    fn integer(&self, digits: &str, negative: bool, at: usize) -> Result<Node, ParseError> {
        let magnitude: Option<i64> = digits.parse::<u32>().ok().map(i64::from);
        let value = magnitude
            .map(|m| if negative { -m } else { m })
            .and_then(|v| i32::try_from(v).ok());
        match value {
            Some(v) => Ok(Node::Literal(Value::Integer(v))),
            None => Err(error(
                self.text,
                at,
                format!(
                    "integer literal {}{digits} is outside the 32-bit signed range",
                    if negative { "-" } else { "" }
                ),
            )),
        }
    }

    fn word(&mut self, word: &'s str, at: usize) -> Result<(Node, u32), ParseError> {
        match keyword(word) {
            Some(Keyword::True) => return Ok((Node::Literal(Value::Boolean(true)), 1)),
            Some(Keyword::False) => return Ok((Node::Literal(Value::Boolean(false)), 1)),
            Some(Keyword::Not) => {
                let (operand, depth) = self.expression(BP_UNARY)?;
                return Ok((Node::Not(Box::new(operand)), depth + 1));
            }
            Some(Keyword::Exists) => {
                let token = self.advance();
                let name = match token.tok {
                    Tok::Word(name) if keyword(name).is_none() => {
                        self.identifier(name, token.start)?
                    }
                    other => {
                        return Err(error(
                            self.text,
                            token.start,
                            format!(
                                "expected an attribute name after EXISTS, found {}",
                                other.describe()
                            ),
                        ));
                    }
                };
                return Ok((Node::Exists(name), 1));
            }
            Some(_) => {
                return Err(error(
                    self.text,
                    at,
                    format!("expected an expression, found keyword `{word}`"),
                ));
            }
            None => {}
        }
        if self.peek() == &Tok::LParen {
            return self.call(word, at);
        }
        Ok((Node::Attribute(self.identifier(word, at)?), 1))
    }

    /// An attribute name: letters and digits (the CloudEvents naming convention).
    /// Matched case-insensitively, as the TCK requires (`EXISTS SOURCE`), by
    /// lowercasing it.
    fn identifier(&self, word: &str, at: usize) -> Result<Arc<str>, ParseError> {
        if word.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Arc::from(word.to_ascii_lowercase()))
        } else {
            Err(error(
                self.text,
                at,
                format!("`{word}` is not a valid attribute name (letters a-z and digits 0-9 only)"),
            ))
        }
    }

    fn call(&mut self, word: &str, at: usize) -> Result<(Node, u32), ParseError> {
        let valid = word.as_bytes()[0].is_ascii_alphabetic()
            && word.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
        if !valid {
            return Err(error(
                self.text,
                at,
                format!("`{word}` is not a valid function name (letters and `_` only)"),
            ));
        }
        self.expect(&Tok::LParen, "")?;
        let mut args = Vec::new();
        let mut depth = 0;
        if self.peek() != &Tok::RParen {
            loop {
                let (arg, arg_depth) = self.expression(0)?;
                args.push(arg);
                depth = depth.max(arg_depth);
                if self.peek() == &Tok::Comma {
                    self.advance();
                } else {
                    break;
                }
            }
        }
        self.expect(&Tok::RParen, "to close the argument list")?;
        let name = word.to_ascii_uppercase();
        let Some(function) = Function::resolve(&name, args.len()) else {
            return Err(ParseError {
                message: format!(
                    "no function {name} taking {} argument{}",
                    args.len(),
                    if args.len() == 1 { "" } else { "s" }
                ),
                column: super::lexer::column(self.text, at),
                kind: ErrorKind::MissingFunction,
            });
        };
        Ok((Node::Call { function, args }, depth + 1))
    }
}

impl Node {
    /// See [`Expression::required_type`](super::Expression::required_type).
    pub(super) fn required_type(&self) -> Option<&str> {
        match self {
            Node::Binary {
                op: BinaryOp::Eq,
                left,
                right,
            } => match (&**left, &**right) {
                (Node::Attribute(name), Node::Literal(Value::String(ty)))
                | (Node::Literal(Value::String(ty)), Node::Attribute(name))
                    if &**name == "type" =>
                {
                    Some(ty.as_ref())
                }
                _ => None,
            },
            Node::Logic {
                op: LogicOp::And,
                operands,
            } => operands.iter().find_map(Node::required_type),
            _ => None,
        }
    }

    /// See [`Expression::required_type_prefix`](super::Expression::required_type_prefix).
    pub(super) fn required_type_prefix(&self) -> Option<&str> {
        match self {
            Node::Like {
                operand,
                pattern,
                negated: false,
            } if matches!(&**operand, Node::Attribute(name) if &**name == "type") => {
                pattern.literal_prefix()
            }
            Node::Logic {
                op: LogicOp::And,
                operands,
            } => operands.iter().find_map(Node::required_type_prefix),
            _ => None,
        }
    }

    /// The type of the node's value, where the grammar alone decides it; `None` for
    /// an attribute, whose type depends on how it is used.
    pub(super) fn static_type(&self) -> Option<&'static str> {
        match self {
            Node::Literal(value) => Some(value.type_name()),
            Node::Attribute(_) => None,
            Node::Exists(_)
            | Node::Not(_)
            | Node::Logic { .. }
            | Node::Like { .. }
            | Node::In { .. } => Some("Boolean"),
            Node::Negate(_) => Some("Integer"),
            Node::Binary { op, .. } => Some(match op {
                BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem | BinaryOp::Add | BinaryOp::Sub => {
                    "Integer"
                }
                _ => "Boolean",
            }),
            Node::Call { function, .. } => Some(function.return_type()),
        }
    }
}
