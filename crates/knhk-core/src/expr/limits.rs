//! Bounds on an expression: its size and shape, checked on its text before it is parsed and on
//! its tree after, and the budget one evaluation may spend.
//!
//! The CEL parser and evaluator recurse once per level of the expression's tree, with large
//! frames in a debug build: an expression of a few hundred chained `+` overflows the stack, and
//! nested comprehensions multiply their work. So the text is scanned first, without recursion,
//! and refused when it is too long or too deep; comprehensions may not nest deeper than
//! [`MAX_COMPREHENSION_NESTING`]; and every comprehension is charged, when its range is
//! evaluated, for the elements it will iterate over, against [`MAX_ITERATIONS`] per evaluation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr};
use cel::{ExecutionError, FunctionContext, Value};

use crate::model::Syntax;

/// The longest expression accepted, in bytes of its text.
pub const MAX_EXPRESSION_BYTES: usize = 8 * 1024;
/// The deepest expression accepted: brackets, calls, member selections and operators chained
/// without `&&`, `||` or `,` between them each add a level.
pub const MAX_NESTING: usize = 32;
/// The most comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) nested inside each
/// other in one expression.
pub const MAX_COMPREHENSION_NESTING: usize = 3;
/// The most elements all the comprehensions of one evaluation may iterate over together.
pub const MAX_ITERATIONS: u64 = 1_000_000;
/// The most elements one comprehension may iterate over (the size of its list or map).
pub const MAX_RANGE: u64 = 100_000;

/// The name of the function that wraps every comprehension's range to charge it to the
/// budget. `@` cannot start an identifier in CEL, so no expression can call it or shadow it.
pub(super) const RANGE_FUNCTION: &str = "@knhk_range";

/// Checks the length and the nesting of an expression's text, before any parser sees it. Of
/// XPath, only brackets are counted: this scan knows CEL's operators, not XPath's.
pub(super) fn check_text(source: &str, syntax: Syntax) -> Result<(), String> {
    if source.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "is {} bytes long, more than the {MAX_EXPRESSION_BYTES} allowed",
            source.len()
        ));
    }
    let depth = nesting(source, syntax == Syntax::Xpath);
    if depth > MAX_NESTING {
        return Err(format!(
            "is nested {depth} levels deep (brackets, calls and chained operators), more than \
             the {MAX_NESTING} allowed"
        ));
    }
    Ok(())
}

/// One open bracket of the scan (or the whole text), with the operators seen in it since the
/// last `&&`, `||` or `,`: the parser folds such a chain into a tree as deep as it is long.
struct Group {
    close: u8,
    chained: usize,
}

/// Estimates how deep the expression's tree is from its text, without recursion: the sum over
/// the open brackets of one level each plus the operators chained in each.
fn nesting(source: &str, brackets_only: bool) -> usize {
    let bytes = source.as_bytes();
    let mut groups = vec![Group {
        close: 0,
        chained: 0,
    }];
    let mut deepest = 0;
    let mut i = 0;
    // Whether the last token ends an operand: a bracket after one is a call or an index.
    let mut after_operand = false;
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    while let Some(&c) = bytes.get(i) {
        let next = at(i + 1);
        let mut op = false;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'"' | b'\'' => {
                // A string that is not closed is an error the lexer reports before reading
                // on: what follows is scanned as code, so that it cannot hide from the count.
                match string_end(bytes, i, Escapes::Backslash) {
                    Some(end) => {
                        i = end;
                        after_operand = true;
                    }
                    None => i += 1,
                }
                continue;
            }
            b'/' if next == b'/' => {
                // A comment, to the end of its line.
                while bytes.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'0'..=b'9' => {
                // A number, its fraction and exponent included: its `.` is no selection.
                i += 1;
                while let Some(&d) = bytes.get(i) {
                    let fraction = d == b'.' && at(i + 1).is_ascii_digit();
                    if !(d.is_ascii_alphanumeric() || d == b'_' || fraction) {
                        break;
                    }
                    i += 1;
                }
                after_operand = true;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                // An identifier, or the prefix of a string: in a raw one (`r'...'`) a
                // backslash escapes nothing.
                let start = i;
                i += 1;
                while bytes
                    .get(i)
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == b'_')
                {
                    i += 1;
                }
                let raw = bytes.get(start..i).is_some_and(|p| {
                    p.len() <= 2
                        && p.iter().any(|b| b.eq_ignore_ascii_case(&b'r'))
                        && p.iter().all(|b| b"rRbB".contains(b))
                });
                if raw
                    && matches!(at(i), b'"' | b'\'')
                    && let Some(end) = string_end(bytes, i, Escapes::Raw)
                {
                    i = end;
                }
                // `in` is a relation, chained like `<`.
                let relation = bytes.get(start..i) == Some(b"in".as_slice());
                if relation
                    && !brackets_only
                    && let Some(g) = groups.last_mut()
                {
                    g.chained += 1;
                    let depth: usize = groups.iter().map(|g| 1 + g.chained).sum();
                    deepest = deepest.max(depth);
                }
                after_operand = !relation;
                continue;
            }
            b'(' | b'[' | b'{' => {
                // A call or an index nests in the tree like an operator does.
                if c != b'{'
                    && after_operand
                    && !brackets_only
                    && let Some(g) = groups.last_mut()
                {
                    g.chained += 1;
                }
                let close = match c {
                    b'(' => b')',
                    b'[' => b']',
                    _ => b'}',
                };
                groups.push(Group { close, chained: 0 });
            }
            b')' | b']' | b'}'
                if groups.len() > 1 && groups.last().is_some_and(|g| g.close == c) =>
            {
                groups.pop();
            }
            b',' => {
                if let Some(g) = groups.last_mut() {
                    g.chained = 0;
                }
            }
            b'&' | b'|' if next == c => {
                if let Some(g) = groups.last_mut() {
                    g.chained = 0;
                }
                i += 2;
                continue;
            }
            b'=' | b'!' | b'<' | b'>' if next == b'=' => {
                op = true;
                i += 1;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'?' | b'.' => op = true,
            _ => {}
        }
        if op
            && !brackets_only
            && let Some(g) = groups.last_mut()
        {
            g.chained += 1;
        }
        after_operand = matches!(c, b')' | b']' | b'}');
        let depth: usize = groups.iter().map(|g| 1 + g.chained).sum();
        deepest = deepest.max(depth);
        i += 1;
    }
    // The brackets and chains still open at the end count too.
    deepest.max(groups.iter().map(|g| 1 + g.chained).sum())
}

/// Whether a backslash in a string escapes the character after it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escapes {
    Backslash,
    Raw,
}

/// Returns the index just past the string literal that starts at `i` (single, double or triple
/// quoted), or `None` when it is not closed: a single-quoted string ends at its line.
fn string_end(bytes: &[u8], i: usize, escapes: Escapes) -> Option<usize> {
    let quote = *bytes.get(i)?;
    let triple = bytes
        .get(i..i + 3)
        .is_some_and(|s| s.iter().all(|&b| b == quote));
    let mut j = if triple { i + 3 } else { i + 1 };
    while let Some(&b) = bytes.get(j) {
        if b == b'\\' && escapes == Escapes::Backslash {
            j += 2;
            continue;
        }
        if b == b'\n' && !triple {
            return None;
        }
        if b == quote {
            if !triple {
                return Some(j + 1);
            }
            if bytes
                .get(j..j + 3)
                .is_some_and(|s| s.iter().all(|&b| b == quote))
            {
                return Some(j + 3);
            }
        }
        j += 1;
    }
    None
}

/// The deepest parsed tree evaluated. The scan of the text estimates the depth and keeps well
/// under this; the parsed tree is measured too, without recursion, so that an estimate that
/// falls short cannot overflow the stack in evaluation.
const MAX_TREE_DEPTH: usize = 3 * MAX_NESTING;

/// Refuses a parsed tree deeper than [`MAX_TREE_DEPTH`], measured without recursion.
pub(super) fn check_tree(root: &IdedExpr) -> Result<(), String> {
    let mut stack = vec![(root, 1usize)];
    while let Some((expr, depth)) = stack.pop() {
        if depth > MAX_TREE_DEPTH {
            return Err(format!(
                "is nested more than {MAX_TREE_DEPTH} levels deep once parsed"
            ));
        }
        stack.extend(children(expr).into_iter().map(|e| (e, depth + 1)));
    }
    Ok(())
}

/// Returns the sub-expressions of `expr`.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    let mut out = Vec::new();
    match &expr.expr {
        Expr::Call(call) => {
            out.extend(call.target.as_deref());
            out.extend(&call.args);
        }
        Expr::Comprehension(c) => {
            out.extend([
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]);
        }
        Expr::List(list) => out.extend(&list.elements),
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(m) = &entry.expr {
                    out.extend([&m.key, &m.value]);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(m) => out.extend([&m.key, &m.value]),
                    EntryExpr::StructField(f) => out.push(&f.value),
                }
            }
        }
        Expr::Select(s) => out.push(&s.operand),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
    out
}

/// Checks how deeply comprehensions nest in a parsed expression, and wraps the range of each in
/// [`RANGE_FUNCTION`]. Returns whether the expression has any comprehension. The recursion is
/// as deep as the tree, which [`check_text`] bounded before parsing.
pub(super) fn guard_comprehensions(expr: &mut IdedExpr) -> Result<bool, String> {
    let deepest = walk(expr, 0)?;
    Ok(deepest > 0)
}

/// Returns the deepest nesting of comprehensions in `expr`, `outer` of them enclosing it.
fn walk(expr: &mut IdedExpr, outer: usize) -> Result<usize, String> {
    let mut deepest = outer;
    let mut visit = |e: &mut IdedExpr, inside: usize| -> Result<(), String> {
        deepest = deepest.max(walk(e, inside)?);
        Ok(())
    };
    let id = expr.id;
    match &mut expr.expr {
        Expr::Comprehension(c) => {
            let inside = outer + 1;
            if inside > MAX_COMPREHENSION_NESTING {
                return Err(format!(
                    "nests more than {MAX_COMPREHENSION_NESTING} comprehensions (all, exists, \
                     exists_one, map, filter) inside each other"
                ));
            }
            visit(&mut c.iter_range, outer)?;
            let range = std::mem::take(&mut c.iter_range);
            c.iter_range = IdedExpr {
                id,
                expr: Expr::Call(CallExpr {
                    func_name: RANGE_FUNCTION.to_string(),
                    target: None,
                    args: vec![range],
                }),
            };
            visit(&mut c.accu_init, outer)?;
            for e in [&mut c.loop_cond, &mut c.loop_step, &mut c.result] {
                visit(e, inside)?;
            }
        }
        Expr::Call(call) => {
            if let Some(target) = call.target.as_deref_mut() {
                visit(target, outer)?;
            }
            for arg in &mut call.args {
                visit(arg, outer)?;
            }
        }
        Expr::List(list) => {
            for e in &mut list.elements {
                visit(e, outer)?;
            }
        }
        Expr::Map(map) => {
            for entry in &mut map.entries {
                if let EntryExpr::MapEntry(m) = &mut entry.expr {
                    visit(&mut m.key, outer)?;
                    visit(&mut m.value, outer)?;
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &mut s.entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(m) => {
                        visit(&mut m.key, outer)?;
                        visit(&mut m.value, outer)?;
                    }
                    EntryExpr::StructField(f) => visit(&mut f.value, outer)?,
                }
            }
        }
        Expr::Select(s) => visit(&mut s.operand, outer)?,
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
    Ok(deepest)
}

/// What one evaluation has spent of its budget, shared with the range function it calls.
#[derive(Default)]
pub(super) struct Budget {
    iterated: AtomicU64,
    /// Why the evaluation was stopped, once it was.
    exceeded: OnceLock<String>,
}

impl Budget {
    /// Returns why the evaluation was stopped, if the budget stopped it.
    pub(super) fn exceeded(&self) -> Option<String> {
        self.exceeded.get().cloned()
    }

    /// Charges a comprehension's range, and returns it unchanged while within budget. Past the
    /// budget it returns an empty list, not an error: `all` and `exists` absorb errors and go on
    /// iterating, while an empty range ends every loop at once. The evaluation fails afterwards
    /// all the same, because the budget says why it was stopped.
    pub(super) fn charge<'c, 'v>(
        &self,
        ftx: &FunctionContext<'c, 'v>,
    ) -> Result<Value, ExecutionError> {
        let Some(range) = ftx.args.first() else {
            return Err(ftx.error("a comprehension has no range"));
        };
        let size = range
            .as_sizer()
            .map_or(0, |s| u64::try_from(*s.size().inner()).unwrap_or(0));
        if self.exceeded.get().is_some() {
            return Ok(Value::List(Arc::new(Vec::new())));
        }
        let why = if size > MAX_RANGE {
            Some(format!(
                "a comprehension would iterate over {size} elements, more than the {MAX_RANGE} \
                 allowed"
            ))
        } else {
            let before = self.iterated.fetch_add(size, Ordering::Relaxed);
            (before.saturating_add(size) > MAX_ITERATIONS).then(|| {
                format!(
                    "its comprehensions would iterate over more than {MAX_ITERATIONS} elements \
                     in all, the budget of one evaluation"
                )
            })
        };
        match why {
            None => Value::try_from(range.as_ref()),
            Some(why) => {
                let _ = self.exceeded.set(why);
                Ok(Value::List(Arc::new(Vec::new())))
            }
        }
    }
}

#[cfg(test)]
mod tests;
