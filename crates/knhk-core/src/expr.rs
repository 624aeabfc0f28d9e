//! Expressions over case data: CEL compiled once at load time, and YAWL's simple XPath translated into CEL.
//!
//! CEL is knhk's one expression language. XPath, as found in YAWL predicates and mappings, is only
//! accepted in the small subset [`translate_xpath`] understands, and is run as the CEL it translates to.
//!
//! Case data is JSON. Each JSON number that fits an `i64` (or else a `u64`) becomes a CEL `int`
//! (`uint`), and every other number a `double`. CEL 0.15 compares `int` with `double` by value, so
//! `amount > 1000` holds for an `amount` of `1500.5`; arithmetic between the two is refused by CEL
//! (`1 + 1.5` is an evaluation error), as the CEL specification has it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::{Context, Env, Program, Value};
use serde_json::{Map, Value as Json};

use crate::model::{Expression, Syntax};

/// An expression compiled once at load time, evaluated many times.
#[derive(Clone)]
pub struct CompiledExpr {
    source: Expression,
    cel: String,
    // `Program` is neither `Clone` nor cheap to rebuild; sharing it keeps `CompiledExpr` cheap to clone.
    program: Arc<Program>,
}

impl fmt::Debug for CompiledExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledExpr")
            .field("source", &self.source.source)
            .field("syntax", &self.source.syntax)
            .field("cel", &self.cel)
            .finish_non_exhaustive()
    }
}

impl CompiledExpr {
    /// Compiles an expression, translating it into CEL first when it is written in XPath.
    pub fn compile(expr: &Expression) -> Result<CompiledExpr, ExprError> {
        let cel = match expr.syntax {
            Syntax::Cel => expr.source.clone(),
            Syntax::Xpath => translate_xpath(&expr.source)?,
        };
        let program = stdlib().compile(&cel).map_err(|errors| {
            let mut message = errors
                .errors
                .iter()
                .map(|e| format!("at {}:{}: {}", e.pos.0, e.pos.1, e.msg))
                .collect::<Vec<_>>()
                .join("; ");
            if expr.syntax == Syntax::Xpath {
                message = format!("its translation `{cel}` {message}");
            }
            ExprError::Syntax {
                source: expr.source.clone(),
                message,
            }
        })?;
        Ok(CompiledExpr {
            source: expr.clone(),
            cel,
            program: Arc::new(program),
        })
    }

    /// Returns the expression as written.
    pub fn source(&self) -> &Expression {
        &self.source
    }

    /// Returns the CEL text that is run: the source itself, or its translation for XPath.
    pub fn cel_source(&self) -> &str {
        &self.cel
    }

    /// Evaluates to a boolean over the case data; each top-level key of `data` is a CEL variable, and the whole object is also bound as `data` (unless a key is itself called `data`).
    pub fn eval_bool(&self, data: &Map<String, Json>) -> Result<bool, ExprError> {
        match self.execute(data, &[])? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::NotBoolean {
                source: self.source.source.clone(),
                got: describe(&other),
            }),
        }
    }

    /// Evaluates to a JSON value over the case data plus extra variables (e.g. ("output", &v), ("item", &v)), extras shadow data keys.
    pub fn eval_value(
        &self,
        data: &Map<String, Json>,
        extra: &[(&str, &Json)],
    ) -> Result<Json, ExprError> {
        let value = self.execute(data, extra)?;
        value.json().map_err(|e| ExprError::Eval {
            source: self.source.source.clone(),
            message: format!("the result is not representable as json: {e}"),
        })
    }

    /// Runs the program with the case data and the extras bound, later bindings shadowing earlier ones.
    fn execute(
        &self,
        data: &Map<String, Json>,
        extra: &[(&str, &Json)],
    ) -> Result<Value, ExprError> {
        let mut context = Context::with_env(Arc::clone(stdlib()));
        let fields: Vec<(&String, Value)> = data.iter().map(|(k, v)| (k, to_cel(v))).collect();
        let whole: HashMap<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).clone(), v.clone()))
            .collect();
        // Bound before the keys: a case variable of its own called `data` is what the case means by
        // `data` (and what YAWL's `/net/data/...` reads), so it shadows the whole object.
        context.add_variable_from_value("data", Value::Map(whole.into()));
        for (key, value) in fields {
            context.add_variable_from_value(key.as_str(), value);
        }
        for (name, value) in extra {
            context.add_variable_from_value(*name, to_cel(value));
        }
        self.program.execute(&context).map_err(|e| ExprError::Eval {
            source: self.source.source.clone(),
            message: e.to_string(),
        })
    }
}

/// Returns the standard CEL environment, built once: it is immutable and the same for every expression.
fn stdlib() -> &'static Arc<Env> {
    static STDLIB: OnceLock<Arc<Env>> = OnceLock::new();
    STDLIB.get_or_init(|| Arc::new(Env::stdlib()))
}

/// Converts JSON into a CEL value, keeping whole numbers as integers so that CEL integer arithmetic applies to them.
fn to_cel(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(fields) => Value::Map(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<HashMap<String, Value>>()
                .into(),
        ),
    }
}

/// Describes a CEL value by its type and, where JSON can show it, its value.
fn describe(value: &Value) -> String {
    match value.json() {
        Ok(json) => format!("{} {json}", value.type_of()),
        Err(_) => value.type_of().to_string(),
    }
}

/// Why an expression could not be compiled or evaluated.
///
/// `Display` and `Error` are written by hand rather than derived with `thiserror`: its derive takes a
/// field named `source` for the underlying error, and here `source` is the expression text.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprError {
    /// The expression does not parse: as CEL, or as XPath before any translation.
    Syntax { source: String, message: String },
    /// The XPath is well formed but goes beyond the subset that translates to CEL.
    UnsupportedXpath { source: String, message: String },
    /// Evaluation failed, e.g. on an unknown variable or a missing key.
    Eval { source: String, message: String },
    /// A predicate evaluated to something other than a boolean.
    NotBoolean { source: String, got: String },
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprError::Syntax { source, message } => {
                write!(f, "expression `{source}` does not parse: {message}")
            }
            ExprError::UnsupportedXpath { source, message } => {
                write!(f, "xpath expression `{source}` is not supported: {message}")
            }
            ExprError::Eval { source, message } => {
                write!(f, "expression `{source}` failed to evaluate: {message}")
            }
            ExprError::NotBoolean { source, got } => {
                write!(f, "expression `{source}` is not a boolean: got {got}")
            }
        }
    }
}

impl std::error::Error for ExprError {}

/// Translates the simple XPath forms of YAWL predicates into CEL, refusing anything else.
///
/// Accepted: absolute paths `/net/a/b` (the root element is the net's data, so this is `a.b`, and
/// `/net` alone is `data`), relative paths `a/b` and bare names, string and number literals,
/// `=`, `!=`, `<`, `<=`, `>`, `>=`, `and`, `or`, `not(...)`, `true()`, `false()` and parentheses.
pub fn translate_xpath(src: &str) -> Result<String, ExprError> {
    let tokens = tokenize(src)?;
    let mut parser = XpathParser {
        src,
        tokens,
        pos: 0,
    };
    let node = parser.or_expr()?;
    if let Some(token) = parser.peek() {
        return Err(parser.unexpected(token, "after the end of the expression"));
    }
    let mut out = String::new();
    node.write_cel(&mut out);
    Ok(out)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Name(String),
    Number(String),
    Str(String),
    LParen,
    RParen,
    Slash,
    Minus,
    Cmp(CmpOp),
    /// Well-formed XPath outside the subset: `//`, `..`, `.`, `@`, `[`, `]`, `*`, `|`, `$`, `,`, `+`, `:`, `::`.
    Unsupported(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn cel(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn xpath(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            other => other.cel(),
        }
    }

    fn is_equality(self) -> bool {
        matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Name(name) | Token::Number(name) => write!(f, "`{name}`"),
            Token::Str(s) => write!(f, "string '{s}'"),
            Token::LParen => f.write_str("`(`"),
            Token::RParen => f.write_str("`)`"),
            Token::Slash => f.write_str("`/`"),
            Token::Minus => f.write_str("`-`"),
            Token::Cmp(op) => write!(f, "`{}`", op.xpath()),
            Token::Unsupported(text) => write!(f, "`{text}`"),
        }
    }
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let syntax = |message: String| ExprError::Syntax {
        source: src.to_owned(),
        message,
    };
    let mut tokens = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let token = match c {
            c if c.is_whitespace() => continue,
            '(' => Token::LParen,
            ')' => Token::RParen,
            '=' => Token::Cmp(CmpOp::Eq),
            '!' if next == Some('=') => {
                chars.next();
                Token::Cmp(CmpOp::Ne)
            }
            '<' | '>' => {
                let or_equal = next == Some('=');
                if or_equal {
                    chars.next();
                }
                Token::Cmp(match (c, or_equal) {
                    ('<', false) => CmpOp::Lt,
                    ('<', true) => CmpOp::Le,
                    (_, false) => CmpOp::Gt,
                    (_, true) => CmpOp::Ge,
                })
            }
            '/' if next == Some('/') => {
                chars.next();
                Token::Unsupported("//")
            }
            '/' => Token::Slash,
            '-' => Token::Minus,
            ':' if next == Some(':') => {
                chars.next();
                Token::Unsupported("::")
            }
            '.' if next == Some('.') => {
                chars.next();
                Token::Unsupported("..")
            }
            '\'' | '"' => {
                let mut text = String::new();
                let mut closed = false;
                for (_, d) in chars.by_ref() {
                    if d == c {
                        closed = true;
                        break;
                    }
                    text.push(d);
                }
                if !closed {
                    return Err(syntax(format!(
                        "the string starting at offset {start} is not terminated"
                    )));
                }
                Token::Str(text)
            }
            c if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let mut end = start + c.len_utf8();
                let mut seen_dot = c == '.';
                while let Some(&(i, d)) = chars.peek() {
                    if d.is_ascii_digit() || (d == '.' && !seen_dot) {
                        seen_dot |= d == '.';
                        end = i + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                Token::Number(src[start..end].to_owned())
            }
            c if is_name_start(c) => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, d)) = chars.peek() {
                    if is_name_char(d) {
                        end = i + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                Token::Name(src[start..end].to_owned())
            }
            '.' => Token::Unsupported("."),
            '@' => Token::Unsupported("@"),
            '[' => Token::Unsupported("["),
            ']' => Token::Unsupported("]"),
            '*' => Token::Unsupported("*"),
            '|' => Token::Unsupported("|"),
            '$' => Token::Unsupported("$"),
            ',' => Token::Unsupported(","),
            '+' => Token::Unsupported("+"),
            ':' => Token::Unsupported(":"),
            other => {
                return Err(syntax(format!(
                    "unexpected character `{other}` at offset {start}"
                )));
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// A translated expression, kept as a tree so that CEL's precedences can be respected when printing.
#[derive(Debug)]
enum Node {
    /// CEL text that needs no parentheses: a literal or a path.
    Atom(String),
    Group(Box<Node>),
    Not(Box<Node>),
    Or(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
}

impl Node {
    fn write_cel(&self, out: &mut String) {
        match self {
            Node::Atom(text) => out.push_str(text),
            Node::Group(inner) => {
                out.push('(');
                inner.write_cel(out);
                out.push(')');
            }
            Node::Not(inner) => {
                out.push_str("!(");
                inner.write_cel(out);
                out.push(')');
            }
            // XPath and CEL agree that `and` binds tighter than `or`, and both are associative.
            Node::Or(lhs, rhs) => {
                lhs.write_cel(out);
                out.push_str(" || ");
                rhs.write_cel(out);
            }
            Node::And(lhs, rhs) => {
                lhs.write_operand(out, matches!(**lhs, Node::Or(..)));
                out.push_str(" && ");
                rhs.write_operand(out, matches!(**rhs, Node::Or(..)));
            }
            // CEL puts all comparisons at one level, where XPath ranks `<` above `=`: nested
            // comparisons are parenthesized so that they keep their XPath grouping.
            Node::Cmp(op, lhs, rhs) => {
                lhs.write_operand(out, lhs.is_binary());
                out.push(' ');
                out.push_str(op.cel());
                out.push(' ');
                rhs.write_operand(out, rhs.is_binary());
            }
        }
    }

    fn write_operand(&self, out: &mut String, parenthesize: bool) {
        if parenthesize {
            out.push('(');
            self.write_cel(out);
            out.push(')');
        } else {
            self.write_cel(out);
        }
    }

    fn is_binary(&self) -> bool {
        matches!(self, Node::Or(..) | Node::And(..) | Node::Cmp(..))
    }
}

/// Words CEL reserves, which cannot name a variable or a field in a path.
const CEL_RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

struct XpathParser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl XpathParser<'_> {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.pos).cloned()
    }

    fn peek_at(&self, offset: usize) -> Option<&Token> {
        self.tokens.get(self.pos + offset)
    }

    fn advance(&mut self) -> Option<Token> {
        let token = self.peek();
        self.pos += 1;
        token
    }

    fn peek_name(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Name(n)) if n == word)
    }

    /// Returns the comparison operator next, if it is an equality (`=`, `!=`) or, when `equality` is false, a relation.
    fn peek_cmp(&self, equality: bool) -> Option<CmpOp> {
        match self.tokens.get(self.pos) {
            Some(Token::Cmp(op)) if op.is_equality() == equality => Some(*op),
            _ => None,
        }
    }

    fn unsupported(&self, message: String) -> ExprError {
        ExprError::UnsupportedXpath {
            source: self.src.to_owned(),
            message,
        }
    }

    fn syntax(&self, message: String) -> ExprError {
        ExprError::Syntax {
            source: self.src.to_owned(),
            message,
        }
    }

    /// Builds the error for a token found where it does not belong, saying why when it is outside the subset.
    fn unexpected(&self, token: Token, place: &str) -> ExprError {
        match token {
            Token::Unsupported(text) => self.unsupported(unsupported_reason(text)),
            Token::Minus => self.unsupported("arithmetic (`-`) is not supported".to_owned()),
            Token::Name(ref n) if n == "div" || n == "mod" => {
                self.unsupported(format!("arithmetic (`{n}`) is not supported"))
            }
            Token::Slash => self.unsupported(
                "a path step `/` after a parenthesized expression or a function is not supported"
                    .to_owned(),
            ),
            other => self.syntax(format!("unexpected {other} {place}")),
        }
    }

    fn or_expr(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.and_expr()?;
        while self.peek_name("or") {
            self.pos += 1;
            let rhs = self.and_expr()?;
            lhs = Node::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn and_expr(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.equality_expr()?;
        while self.peek_name("and") {
            self.pos += 1;
            let rhs = self.equality_expr()?;
            lhs = Node::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn equality_expr(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.relational_expr()?;
        while let Some(op) = self.peek_cmp(true) {
            self.pos += 1;
            let rhs = self.relational_expr()?;
            lhs = Node::Cmp(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn relational_expr(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.unary_expr()?;
        while let Some(op) = self.peek_cmp(false) {
            self.pos += 1;
            let rhs = self.unary_expr()?;
            lhs = Node::Cmp(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary_expr(&mut self) -> Result<Node, ExprError> {
        if self.peek() == Some(Token::Minus) {
            return match self.peek_at(1).cloned() {
                Some(Token::Number(n)) => {
                    self.pos += 2;
                    Ok(Node::Atom(format!("-{}", cel_number(&n))))
                }
                _ => Err(self.unsupported(
                    "negation other than of a number literal is not supported".to_owned(),
                )),
            };
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let Some(token) = self.advance() else {
            return Err(self.syntax("the expression ends where an operand is expected".to_owned()));
        };
        match token {
            Token::Number(n) => Ok(Node::Atom(cel_number(&n))),
            Token::Str(s) => Ok(Node::Atom(cel_string(&s))),
            Token::LParen => {
                let inner = self.or_expr()?;
                self.expect_rparen()?;
                Ok(Node::Group(Box::new(inner)))
            }
            Token::Slash => {
                let mut segments = vec![self.step()?];
                while self.peek() == Some(Token::Slash) {
                    self.pos += 1;
                    segments.push(self.step()?);
                }
                // The first step is the root element, which stands for the net's data itself.
                if segments.len() == 1 {
                    Ok(Node::Atom("data".to_owned()))
                } else {
                    Ok(Node::Atom(segments[1..].join(".")))
                }
            }
            Token::Name(name) if self.peek() == Some(Token::LParen) => self.function(name),
            Token::Name(name) => {
                let mut segments = vec![self.checked_name(name)?];
                while self.peek() == Some(Token::Slash) {
                    self.pos += 1;
                    segments.push(self.step()?);
                }
                Ok(Node::Atom(segments.join(".")))
            }
            other => {
                self.pos -= 1;
                Err(self.unexpected(other, "where an operand is expected"))
            }
        }
    }

    /// Parses one step of a location path, which in the subset is a plain element name.
    fn step(&mut self) -> Result<String, ExprError> {
        match self.advance() {
            Some(Token::Name(name)) if self.peek() == Some(Token::LParen) => Err(self.unsupported(
                format!("the node test or function `{name}()` in a path is not supported"),
            )),
            Some(Token::Name(name)) => self.checked_name(name),
            Some(other) => Err(self.unexpected(other, "where a path step is expected")),
            None => {
                Err(self
                    .unsupported("the document root `/` on its own is not supported".to_owned()))
            }
        }
    }

    fn checked_name(&self, name: String) -> Result<String, ExprError> {
        let valid_ident = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_ident {
            return Err(
                self.unsupported(format!("the name `{name}` is not a valid cel identifier"))
            );
        }
        if CEL_RESERVED.contains(&name.as_str()) {
            return Err(self.unsupported(format!("the name `{name}` is a reserved word in cel")));
        }
        Ok(name)
    }

    /// Parses a function call whose name has been read and whose `(` is next.
    fn function(&mut self, name: String) -> Result<Node, ExprError> {
        self.pos += 1;
        match name.as_str() {
            "true" | "false" => {
                self.expect_rparen()?;
                Ok(Node::Atom(name))
            }
            "not" => {
                let inner = self.or_expr()?;
                self.expect_rparen()?;
                Ok(Node::Not(Box::new(inner)))
            }
            _ => Err(self.unsupported(format!(
                "the function `{name}()` is not supported, only `true()`, `false()` and `not()` are"
            ))),
        }
    }

    fn expect_rparen(&mut self) -> Result<(), ExprError> {
        match self.advance() {
            Some(Token::RParen) => Ok(()),
            Some(other) => Err(self.unexpected(other, "where `)` is expected")),
            None => Err(self.syntax("a `)` is missing".to_owned())),
        }
    }
}

fn unsupported_reason(text: &str) -> String {
    let what = match text {
        "//" => "the descendant axis `//`",
        ".." => "the parent step `..`",
        "." => "the context node `.`",
        "@" => "attributes (`@`)",
        "[" | "]" => "predicates (`[...]`)",
        "*" => "`*` (wildcard or multiplication)",
        "|" => "unions (`|`)",
        "$" => "variable references (`$`)",
        "," => "function arguments lists (`,`)",
        "+" => "arithmetic (`+`)",
        ":" => "namespace prefixes (`:`)",
        "::" => "axes (`::`)",
        other => return format!("`{other}` is not supported"),
    };
    format!("{what} is not supported")
}

/// Writes an XPath number as a CEL literal: whole numbers stay integers, and `.5` or `5.` gain their zero.
fn cel_number(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    if text.starts_with('.') {
        out.push('0');
    }
    out.push_str(text);
    if text.ends_with('.') {
        out.push('0');
    }
    out
}

/// Writes a string as a double-quoted CEL literal.
fn cel_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(value: Json) -> Map<String, Json> {
        match value {
            Json::Object(map) => map,
            other => panic!("test data must be an object, got {other}"),
        }
    }

    fn cel_bool(src: &str, value: Json) -> Result<bool, ExprError> {
        CompiledExpr::compile(&Expression::cel(src))?.eval_bool(&data(value))
    }

    fn xpath_bool(src: &str, value: Json) -> Result<bool, ExprError> {
        CompiledExpr::compile(&Expression::xpath(src))?.eval_bool(&data(value))
    }

    fn unsupported(src: &str) -> String {
        match translate_xpath(src) {
            Err(ExprError::UnsupportedXpath { source, message }) => {
                assert_eq!(source, src);
                message
            }
            other => panic!("expected unsupported xpath for `{src}`, got {other:?}"),
        }
    }

    #[test]
    fn compiled_expr_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<CompiledExpr>();
        assert_send_sync::<ExprError>();
    }

    #[test]
    fn cel_predicates_evaluate_over_json_data() {
        assert!(cel_bool("cardValid == true", json!({"cardValid": true})).unwrap());
        assert!(!cel_bool("cardValid == true", json!({"cardValid": false})).unwrap());
        assert!(cel_bool("amount > 1000", json!({"amount": 1500})).unwrap());
        assert!(!cel_bool("amount > 1000", json!({"amount": 999})).unwrap());
        assert!(
            cel_bool(
                "balance >= withdrawalAmount",
                json!({"balance": 100, "withdrawalAmount": 100})
            )
            .unwrap()
        );
        assert!(
            !cel_bool(
                "balance >= withdrawalAmount",
                json!({"balance": 99.5, "withdrawalAmount": 100})
            )
            .unwrap()
        );
        assert!(
            cel_bool(
                "approved == true && amount < 5000.5",
                json!({"approved": true, "amount": 5000})
            )
            .unwrap()
        );
        assert!(
            !cel_bool(
                "approved == true && amount < 5000.5",
                json!({"approved": true, "amount": 5001})
            )
            .unwrap()
        );
        assert!(cel_bool("size(items) > 2", json!({"items": [1, 2, 3]})).unwrap());
        assert!(!cel_bool("size(items) > 2", json!({"items": [1, 2]})).unwrap());
        assert!(
            cel_bool(
                r#"customer.tier == "gold""#,
                json!({"customer": {"tier": "gold"}})
            )
            .unwrap()
        );
        assert!(
            !cel_bool(
                r#"customer.tier == "gold""#,
                json!({"customer": {"tier": "silver"}})
            )
            .unwrap()
        );
        assert!(cel_bool("note == null", json!({"note": null})).unwrap());
    }

    #[test]
    fn int_and_double_compare_by_value() {
        assert!(cel_bool("1500.5 > 1000", json!({})).unwrap());
        assert!(cel_bool("1500 > 999.5", json!({})).unwrap());
        assert!(cel_bool("amount > 1000", json!({"amount": 1500.5})).unwrap());
        assert!(cel_bool("amount > 999.5", json!({"amount": 1500})).unwrap());
        assert!(!cel_bool("amount > 1000", json!({"amount": 999.5})).unwrap());
        assert!(cel_bool("amount == 2", json!({"amount": 2.0})).unwrap());
        assert!(cel_bool("big > 0", json!({"big": u64::MAX})).unwrap());
    }

    #[test]
    fn whole_data_is_bound_as_data() {
        assert!(cel_bool("data.amount > 10 && size(data) == 1", json!({"amount": 11})).unwrap());
        assert!(
            cel_bool(
                r#"has(data.amount) && !has(data.other)"#,
                json!({"amount": 1})
            )
            .unwrap()
        );
        // A case variable called `data` shadows the whole object.
        assert!(cel_bool("data == 1", json!({"data": 1})).unwrap());
    }

    #[test]
    fn eval_value_builds_objects_and_lists() {
        let total = CompiledExpr::compile(&Expression::cel(r#"{"total": amount * 2}"#)).unwrap();
        assert_eq!(
            total.eval_value(&data(json!({"amount": 21})), &[]).unwrap(),
            json!({"total": 42})
        );
        let doubled = CompiledExpr::compile(&Expression::cel("items.map(i, i * 2)")).unwrap();
        assert_eq!(
            doubled
                .eval_value(&data(json!({"items": [1, 2, 3]})), &[])
                .unwrap(),
            json!([2, 4, 6])
        );
        let nested = CompiledExpr::compile(&Expression::cel(
            r#"{"name": customer.name, "tags": ["a", customer.tier], "ratio": 0.5, "none": null}"#,
        ))
        .unwrap();
        assert_eq!(
            nested
                .eval_value(
                    &data(json!({"customer": {"name": "Ada", "tier": "gold"}})),
                    &[]
                )
                .unwrap(),
            json!({"name": "Ada", "tags": ["a", "gold"], "ratio": 0.5, "none": null})
        );
    }

    #[test]
    fn extras_are_bound_and_shadow_data_keys() {
        let expr = CompiledExpr::compile(&Expression::cel("output.total + item")).unwrap();
        let output = json!({"total": 40});
        let item = json!(2);
        let case = data(json!({"item": 100, "output": {"total": 0}}));
        assert_eq!(
            expr.eval_value(&case, &[("output", &output), ("item", &item)])
                .unwrap(),
            json!(42)
        );
        assert_eq!(expr.eval_value(&case, &[]).unwrap(), json!(100));
    }

    #[test]
    fn cel_syntax_error_names_the_expression() {
        let err = CompiledExpr::compile(&Expression::cel("amount > ")).unwrap_err();
        let ExprError::Syntax { source, message } = &err else {
            panic!("expected a syntax error, got {err:?}");
        };
        assert_eq!(source, "amount > ");
        assert!(!message.is_empty());
        assert!(
            err.to_string()
                .starts_with("expression `amount > ` does not parse: ")
        );
    }

    #[test]
    fn unknown_variable_is_an_eval_error() {
        let err = cel_bool("missing > 1", json!({"amount": 1})).unwrap_err();
        let ExprError::Eval { source, message } = &err else {
            panic!("expected an eval error, got {err:?}");
        };
        assert_eq!(source, "missing > 1");
        assert!(message.contains("missing"), "{message}");
        assert!(
            err.to_string()
                .starts_with("expression `missing > 1` failed to evaluate: ")
        );
    }

    #[test]
    fn missing_key_and_mixed_arithmetic_are_eval_errors() {
        assert!(matches!(
            cel_bool("customer.tier == 'gold'", json!({"customer": {}})),
            Err(ExprError::Eval { .. })
        ));
        assert!(matches!(
            cel_bool("amount + 1.5 > 0", json!({"amount": 1})),
            Err(ExprError::Eval { .. })
        ));
    }

    #[test]
    fn non_boolean_predicate_is_refused() {
        let err = cel_bool("amount + 1", json!({"amount": 1})).unwrap_err();
        assert_eq!(
            err,
            ExprError::NotBoolean {
                source: "amount + 1".to_owned(),
                got: "int 2".to_owned(),
            }
        );
        assert_eq!(
            err.to_string(),
            "expression `amount + 1` is not a boolean: got int 2"
        );
        assert!(matches!(
            cel_bool("name", json!({"name": "x"})),
            Err(ExprError::NotBoolean { .. })
        ));
    }

    #[test]
    fn accessors_and_debug_show_source_and_cel() {
        let expr = CompiledExpr::compile(&Expression::xpath("/data/amount > 100")).unwrap();
        assert_eq!(expr.source(), &Expression::xpath("/data/amount > 100"));
        assert_eq!(expr.cel_source(), "amount > 100");
        let debug = format!("{expr:?}");
        assert!(debug.contains("/data/amount > 100"), "{debug}");
        assert!(debug.contains("\"amount > 100\""), "{debug}");
        let cel = CompiledExpr::compile(&Expression::cel("a == 1")).unwrap();
        assert_eq!(cel.cel_source(), "a == 1");
        let copy = cel.clone();
        assert!(copy.eval_bool(&data(json!({"a": 1}))).unwrap());
    }

    #[test]
    fn xpath_translates_the_supported_forms() {
        let cases = [
            ("condition_b = true()", "condition_b == true"),
            ("true()", "true"),
            ("false()", "false"),
            (" true ( ) ", "true"),
            ("/data/amount > 100", "amount > 100"),
            ("/net/data/amount > 100", "data.amount > 100"),
            (
                "/Order/customer/tier = 'gold'",
                r#"customer.tier == "gold""#,
            ),
            ("/Order", "data"),
            ("amount >= 10", "amount >= 10"),
            ("customer/tier != \"gold\"", r#"customer.tier != "gold""#),
            ("a < 1 and b <= 2", "a < 1 && b <= 2"),
            ("a > 1 or b >= 2", "a > 1 || b >= 2"),
            ("not(a = 1)", "!(a == 1)"),
            ("not(a) and (b or c)", "!(a) && (b || c)"),
            ("a = 1 or b = 2 and c = 3", "a == 1 || b == 2 && c == 3"),
            ("x = -5", "x == -5"),
            ("x < .5 and y > 2.", "x < 0.5 && y > 2.0"),
            ("x = 1.25", "x == 1.25"),
            ("a = b < c", "a == (b < c)"),
            ("s = 'say \"hi\"'", r#"s == "say \"hi\"""#),
            ("s = 'back\\slash'", r#"s == "back\\slash""#),
            ("s = \"it's\"", r#"s == "it's""#),
            ("and = 1", "and == 1"),
        ];
        for (xpath, cel) in cases {
            assert_eq!(
                translate_xpath(xpath).unwrap(),
                cel,
                "translating `{xpath}`"
            );
        }
    }

    #[test]
    fn xpath_predicates_evaluate() {
        assert!(xpath_bool("condition_b = true()", json!({"condition_b": true})).unwrap());
        assert!(!xpath_bool("condition_b = true()", json!({"condition_b": false})).unwrap());
        assert!(xpath_bool("true()", json!({})).unwrap());
        assert!(!xpath_bool("false()", json!({})).unwrap());
        assert!(xpath_bool("/data/amount > 100", json!({"amount": 150})).unwrap());
        assert!(!xpath_bool("/data/amount > 100", json!({"amount": 50})).unwrap());
        assert!(xpath_bool("/net/data/amount > 100", json!({"data": {"amount": 150}})).unwrap());
        // Without a variable called `data`, `data` is the whole case data.
        assert!(xpath_bool("/net/data/amount > 100", json!({"amount": 150})).unwrap());
        assert!(xpath_bool("/Order/total = 3", json!({"total": 3})).unwrap());
        assert!(
            xpath_bool(
                "/Order/customer/tier = 'gold'",
                json!({"customer": {"tier": "gold"}})
            )
            .unwrap()
        );
        assert!(
            xpath_bool(
                "amount >= 10 and not(blocked)",
                json!({"amount": 10, "blocked": false})
            )
            .unwrap()
        );
        assert!(
            xpath_bool(
                "amount < 5 or vip = true()",
                json!({"amount": 10, "vip": true})
            )
            .unwrap()
        );
        assert!(xpath_bool("amount > 1000", json!({"amount": 1500.5})).unwrap());
        assert!(xpath_bool("a = b < c", json!({"a": true, "b": 1, "c": 2})).unwrap());
    }

    #[test]
    fn xpath_outside_the_subset_is_refused_naming_the_part() {
        assert!(unsupported("count(/data/items) > 2").contains("`count()`"));
        assert!(unsupported("//amount > 1").contains("`//`"));
        assert!(unsupported("/data/../amount > 1").contains("`..`"));
        assert!(unsupported("/data/@id = 1").contains("`@`"));
        assert!(unsupported("/data/items[1] = 2").contains("[...]"));
        assert!(unsupported("/data/amount/text() = '1'").contains("`text()`"));
        assert!(unsupported("text() = '1'").contains("`text()`"));
        assert!(unsupported("a + 1 > 2").contains("`+`"));
        assert!(unsupported("a - 1 > 2").contains("`-`"));
        assert!(unsupported("a div 2 > 1").contains("`div`"));
        assert!(unsupported("a * 2 > 1").contains("`*`"));
        assert!(unsupported("/data/* = 1").contains("`*`"));
        assert!(unsupported("a | b").contains("`|`"));
        assert!(unsupported("$x = 1").contains("`$`"));
        assert!(unsupported("child::a = 1").contains("`::`"));
        assert!(unsupported("ns:a = 1").contains("`:`"));
        assert!(unsupported(". = 1").contains("`.`"));
        assert!(unsupported("order-id = 1").contains("`order-id`"));
        assert!(unsupported("a.b = 1").contains("`a.b`"));
        assert!(unsupported("true = 1").contains("`true`"));
        assert!(unsupported("/data/in = 1").contains("`in`"));
        assert!(unsupported("(a)/b").contains("`/`"));
        assert!(unsupported("/").contains("`/`"));
        assert!(unsupported("-a > 1").contains("negation"));
        let err = CompiledExpr::compile(&Expression::xpath("contains(name, 'x')")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "xpath expression `contains(name, 'x')` is not supported: the function `contains()` \
             is not supported, only `true()`, `false()` and `not()` are"
        );
    }

    #[test]
    fn malformed_xpath_is_a_syntax_error() {
        for src in [
            "a = 'open",
            "(a = 1",
            "a = ",
            "",
            "a b",
            "not(a",
            "true(1)",
            "a = 1)",
            "a # 1",
        ] {
            assert!(
                matches!(translate_xpath(src), Err(ExprError::Syntax { ref source, .. }) if source == src),
                "`{src}` gave {:?}",
                translate_xpath(src)
            );
        }
    }
}
