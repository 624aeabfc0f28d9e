//! YAWL's simple XPath predicates, translated into CEL by a tokenizer and a recursive-descent
//! parser; anything beyond the subset is refused naming the part.

use std::fmt;

use super::ExprError;

/// Translates the simple XPath forms of YAWL predicates into CEL, refusing anything else.
///
/// Accepted: absolute paths `/net/a/b` (the root element is the net's data, so this is `a.b`, and
/// `/net` alone is `data`; a final `/text()` step is the element's value), relative paths `a/b`
/// and bare names, string and number literals,
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
                let mut segments: Vec<String> = self.step()?.into_iter().collect();
                while self.peek() == Some(Token::Slash) {
                    self.pos += 1;
                    segments.extend(self.step()?);
                }
                // The first step is the root element, which stands for the net's data itself.
                match segments.get(1..) {
                    Some(rest) if !rest.is_empty() => Ok(Node::Atom(rest.join("."))),
                    _ => Ok(Node::Atom("data".to_owned())),
                }
            }
            Token::Name(name) if self.peek() == Some(Token::LParen) => self.function(name),
            Token::Name(name) => {
                let mut segments = vec![self.checked_name(name)?];
                while self.peek() == Some(Token::Slash) {
                    self.pos += 1;
                    segments.extend(self.step()?);
                }
                Ok(Node::Atom(segments.join(".")))
            }
            other => {
                self.pos -= 1;
                Err(self.unexpected(other, "where an operand is expected"))
            }
        }
    }

    /// Parses one step of a location path, which in the subset is a plain element name, or a
    /// final `text()` (the element's value: the YAWL editor writes `/Net/amount/text() > 5`),
    /// which adds no step.
    fn step(&mut self) -> Result<Option<String>, ExprError> {
        match self.advance() {
            Some(Token::Name(name))
                if name == "text"
                    && self.peek() == Some(Token::LParen)
                    && self.tokens.get(self.pos + 1) == Some(&Token::RParen)
                    && self.tokens.get(self.pos + 2) != Some(&Token::Slash) =>
            {
                self.pos += 2;
                Ok(None)
            }
            Some(Token::Name(name)) if self.peek() == Some(Token::LParen) => Err(self.unsupported(
                format!("the node test or function `{name}()` in a path is not supported"),
            )),
            Some(Token::Name(name)) => self.checked_name(name).map(Some),
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
