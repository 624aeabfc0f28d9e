//! Typed variables in YAWL predicates. YAWL's data is XML text, so its editors compare a
//! boolean variable with a string (`/Net/approved/text() = 'true'`) and sometimes a number with
//! one (`/Net/count/text() > '3'`, which XPath compares as numbers). knhk's case data holds an
//! `xs:boolean` as a JSON boolean and the numeric types as JSON numbers, which such strings never
//! equal; those comparisons are rewritten to compare with the boolean (`true()`) or the number
//! (`3`), which is what they mean, in YAWL XML and in Turtle alike.

use std::collections::HashMap;

use knhk_core::model::{Expression, Net, Syntax};

/// How knhk holds a variable that predicates compare with strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `xs:boolean`: a JSON boolean.
    Boolean,
    /// `xs:int`, `integer`, `long`, `double`, `float`, `decimal`: a JSON number.
    Number,
}

impl Kind {
    /// The kind of a variable of XML Schema type `ty` (with or without a prefix), if knhk
    /// holds it as something other than a string.
    pub(crate) fn of(ty: &str) -> Option<Kind> {
        match ty.rsplit(':').next().map(str::trim) {
            Some("boolean") => Some(Kind::Boolean),
            Some("int" | "integer" | "long" | "double" | "float" | "decimal") => Some(Kind::Number),
            _ => None,
        }
    }
}

/// Rewrites the XPath predicates of every flow of `net` with [`compare_as_typed`]; returns
/// the ids of the elements whose predicates changed, with the variables concerned.
pub(crate) fn rewrite_net(
    net: &mut Net,
    types: &HashMap<String, Kind>,
) -> Vec<(String, String, Kind)> {
    let mut changed = Vec::new();
    if types.is_empty() {
        return changed;
    }
    let tasks = net
        .tasks
        .iter_mut()
        .map(|t| (t.id.as_str().to_owned(), &mut t.flows));
    let conditions = std::iter::once(&mut net.input_condition)
        .chain(net.conditions.iter_mut())
        .map(|c| (c.id.as_str().to_owned(), &mut c.flows));
    for (id, flows) in tasks.chain(conditions) {
        for flow in flows.iter_mut() {
            let Some(Expression {
                source,
                syntax: Syntax::Xpath,
            }) = &mut flow.predicate
            else {
                continue;
            };
            let (query, variables) = compare_as_typed(source, types);
            *source = query;
            for (v, kind) in variables {
                changed.push((id.clone(), v, kind));
            }
        }
    }
    changed
}

/// The note for a predicate that compared `variable`, of `kind`, with a string.
pub(crate) fn note(variable: &str, kind: Kind) -> String {
    match kind {
        Kind::Boolean => format!(
            "a predicate compares the xs:boolean variable {variable:?} with the string 'true' or 'false'; knhk holds it as a boolean and compares it with true() or false()"
        ),
        Kind::Number => format!(
            "a predicate compares the numeric variable {variable:?} with a string holding a number; knhk holds it as a number and compares it with that number"
        ),
    }
}

/// Rewrites every comparison of a path ending in one of `types`' variables (with or without
/// `/text()`, on either side, either quote) with a string literal of that type: `= 'true'` or
/// `!= 'false'` on a boolean becomes `= true()`, any comparison of a number with `'3'` becomes
/// one with `3`. Returns the query and the variables whose comparisons were rewritten.
pub(crate) fn compare_as_typed(
    query: &str,
    types: &HashMap<String, Kind>,
) -> (String, Vec<(String, Kind)>) {
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len());
    let mut rewritten: Vec<(String, Kind)> = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c != '\'' && c != '"' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(len) = chars
            .get(i + 1..)
            .and_then(|rest| rest.iter().position(|&q| q == c))
        else {
            // An unterminated literal: left as it is, for the translation to refuse.
            out.extend(chars.get(i..).unwrap_or_default());
            break;
        };
        let end = i + 1 + len;
        let literal: String = chars.get(i + 1..end).unwrap_or_default().iter().collect();
        let compared = operand_before(&chars, i).or_else(|| operand_after(&chars, end + 1));
        let replacement = compared.and_then(|(variable, equality)| {
            let kind = *types.get(&variable)?;
            let text = match kind {
                Kind::Boolean if equality && (literal == "true" || literal == "false") => {
                    format!("{literal}()")
                }
                Kind::Number if is_number(&literal) => literal.trim().to_owned(),
                _ => return None,
            };
            Some((variable, kind, text))
        });
        match replacement {
            Some((variable, kind, text)) => {
                out.push_str(&text);
                if !rewritten.iter().any(|(v, _)| *v == variable) {
                    rewritten.push((variable, kind));
                }
            }
            None => out.extend(chars.get(i..=end).unwrap_or_default()),
        }
        i = end + 1;
    }
    (out, rewritten)
}

/// Tells whether a string literal holds an XPath number (`3`, `-2.5`, `.5`).
fn is_number(literal: &str) -> bool {
    let t = literal.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|&c| c == '.').count() <= 1
        && digits.chars().any(|c| c.is_ascii_digit())
}

/// The variable named by the path compared with the literal starting at `at`, and whether the
/// comparison is `=` or `!=` (else `<`, `<=`, `>`, `>=`).
fn operand_before(chars: &[char], at: usize) -> Option<(String, bool)> {
    let mut j = skip_back_spaces(chars, at);
    let before = |j: usize| {
        if j == 0 {
            None
        } else {
            chars.get(j - 1).copied()
        }
    };
    let equality = match before(j)? {
        '=' => {
            j -= 1;
            match before(j) {
                Some('<' | '>') => {
                    j -= 1;
                    false
                }
                Some('!') => {
                    j -= 1;
                    true
                }
                _ => true,
            }
        }
        '<' | '>' => {
            j -= 1;
            false
        }
        _ => return None,
    };
    let j = skip_back_spaces(chars, j);
    let start = (0..j)
        .rev()
        .find(|&k| chars.get(k).is_some_and(|c| !is_path_char(*c)))
        .map_or(0, |k| k + 1);
    let name = last_name(&chars.get(start..j)?.iter().collect::<String>())?;
    Some((name, equality))
}

/// The variable named by the path compared with the literal ending before `from`, and whether
/// the comparison is `=` or `!=`.
fn operand_after(chars: &[char], from: usize) -> Option<(String, bool)> {
    let mut j = skip_spaces(chars, from);
    let equality = match chars.get(j)? {
        '!' if chars.get(j + 1) == Some(&'=') => {
            j += 2;
            true
        }
        '=' => {
            j += 1;
            true
        }
        '<' | '>' => {
            j += 1;
            if chars.get(j) == Some(&'=') {
                j += 1;
            }
            false
        }
        _ => return None,
    };
    let start = skip_spaces(chars, j);
    let end = (start..chars.len())
        .find(|&k| chars.get(k).is_some_and(|c| !is_path_char(*c)))
        .unwrap_or(chars.len());
    let name = last_name(&chars.get(start..end)?.iter().collect::<String>())?;
    Some((name, equality))
}

/// The variable a path names: its last step, a final `/text()` aside; `None` for anything that
/// is not a path of plain names (a number, a function call...).
fn last_name(path: &str) -> Option<String> {
    let path = path.strip_suffix("/text()").unwrap_or(path);
    let name = path.rsplit('/').next()?;
    let mut first = name.chars();
    let starts_well = first.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    (starts_well && path.split('/').skip(1).all(|s| !s.is_empty())).then(|| name.to_owned())
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '(' | ')')
}

fn skip_back_spaces(chars: &[char], mut j: usize) -> usize {
    while j > 0 && chars.get(j - 1).is_some_and(|c| c.is_whitespace()) {
        j -= 1;
    }
    j
}

fn skip_spaces(chars: &[char], mut j: usize) -> usize {
    while chars.get(j).is_some_and(|c| c.is_whitespace()) {
        j += 1;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(query: &str) -> (String, Vec<(String, Kind)>) {
        let types: HashMap<String, Kind> = [
            ("approved", Kind::Boolean),
            ("flag", Kind::Boolean),
            ("count", Kind::Number),
        ]
        .iter()
        .map(|(n, k)| (n.to_string(), *k))
        .collect();
        compare_as_typed(query, &types)
    }

    #[test]
    fn string_literals_compared_with_a_boolean_variable_become_booleans() {
        assert_eq!(
            rewrite("/Net/approved/text()='true'"),
            (
                "/Net/approved/text()=true()".to_owned(),
                vec![("approved".to_owned(), Kind::Boolean)]
            )
        );
        assert_eq!(
            rewrite("/Net/flag/text() != \"false\" and /Net/n/text() > 3").0,
            "/Net/flag/text() != false() and /Net/n/text() > 3"
        );
        assert_eq!(rewrite("'false' = /data/flag").0, "false() = /data/flag");
        assert_eq!(
            rewrite("(/Net/approved/text()='true') or /Net/flag = 'false'").0,
            "(/Net/approved/text()=true()) or /Net/flag = false()"
        );
    }

    #[test]
    fn string_literals_compared_with_a_number_variable_become_numbers() {
        assert_eq!(
            rewrite("/Net/count/text() >= '3' and '-2.5' < /Net/count and /Net/count != ' 7 '"),
            (
                "/Net/count/text() >= 3 and -2.5 < /Net/count and /Net/count != 7".to_owned(),
                vec![("count".to_owned(), Kind::Number)]
            )
        );
    }

    #[test]
    fn other_comparisons_are_left_alone() {
        for query in [
            "/Net/name/text()='true'",
            "/Net/approved/text()='yes'",
            "/Net/approved/text() >= 'true'",
            "/Net/flag = 'true ' ",
            "/Net/count = 'many'",
            "/Net/count = '1.2.3'",
            "/Net/x = 'it''s'",
            "'unterminated",
        ] {
            assert_eq!(rewrite(query), (query.to_owned(), Vec::new()), "{query}");
        }
    }
}
