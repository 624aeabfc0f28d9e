//! Boolean variables in YAWL predicates. YAWL's data is XML text, so its editors compare a
//! boolean variable with a string: `/Net/approved/text() = 'true'`. knhk's case data holds an
//! `xs:boolean` as a JSON boolean, against which the string `'true'` never matches; such a
//! comparison is rewritten to compare with the boolean (`true()`), which is what it means, in
//! YAWL XML and in Turtle alike.

use std::collections::HashSet;

use knhk_core::model::{Expression, Net, Syntax};

/// Rewrites the XPath predicates of every flow of `net` with [`compare_booleans_as_booleans`];
/// returns the ids of the elements whose predicates changed, with the variables concerned.
pub(crate) fn rewrite_net(net: &mut Net, booleans: &HashSet<String>) -> Vec<(String, String)> {
    let mut changed = Vec::new();
    if booleans.is_empty() {
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
            let (query, variables) = compare_booleans_as_booleans(source, booleans);
            *source = query;
            for v in variables {
                changed.push((id.clone(), v));
            }
        }
    }
    changed
}

/// The note for a predicate that compared the boolean `variable` with a string.
pub(crate) fn note(variable: &str) -> String {
    format!(
        "a predicate compares the xs:boolean variable {variable:?} with the string 'true' or 'false'; knhk holds it as a boolean and compares it with true() or false()"
    )
}

/// Rewrites every `= 'true'`, `!= 'false'` (either side, either quote) that compares a path
/// ending in one of `booleans` (with or without `/text()`) into a comparison with `true()` or
/// `false()`. Returns the query and the variables whose comparisons were rewritten.
pub(crate) fn compare_booleans_as_booleans(
    query: &str,
    booleans: &HashSet<String>,
) -> (String, Vec<String>) {
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len());
    let mut rewritten = Vec::new();
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
        let variable = if literal == "true" || literal == "false" {
            compared_before(&chars, i).or_else(|| compared_after(&chars, end + 1))
        } else {
            None
        };
        match variable.filter(|v| booleans.contains(v)) {
            Some(v) => {
                out.push_str(&literal);
                out.push_str("()");
                if !rewritten.contains(&v) {
                    rewritten.push(v);
                }
            }
            None => out.extend(chars.get(i..=end).unwrap_or_default()),
        }
        i = end + 1;
    }
    (out, rewritten)
}

/// The last name of the path compared (`=` or `!=`) with the literal starting at `at`.
fn compared_before(chars: &[char], at: usize) -> Option<String> {
    let mut j = skip_back_spaces(chars, at);
    // `=` or `!=`, but not `<=` or `>=`.
    if j == 0 || chars.get(j - 1) != Some(&'=') {
        return None;
    }
    j -= 1;
    if j > 0 && matches!(chars.get(j - 1), Some('<' | '>')) {
        return None;
    }
    if j > 0 && chars.get(j - 1) == Some(&'!') {
        j -= 1;
    }
    let j = skip_back_spaces(chars, j);
    let start = (0..j)
        .rev()
        .find(|&k| chars.get(k).is_some_and(|c| !is_path_char(*c)))
        .map_or(0, |k| k + 1);
    last_name(&chars.get(start..j)?.iter().collect::<String>())
}

/// The last name of the path compared (`=` or `!=`) with the literal ending before `from`.
fn compared_after(chars: &[char], from: usize) -> Option<String> {
    let mut j = skip_spaces(chars, from);
    if chars.get(j) == Some(&'!') {
        j += 1;
    }
    if chars.get(j) != Some(&'=') {
        return None;
    }
    let start = skip_spaces(chars, j + 1);
    let end = (start..chars.len())
        .find(|&k| chars.get(k).is_some_and(|c| !is_path_char(*c)))
        .unwrap_or(chars.len());
    last_name(&chars.get(start..end)?.iter().collect::<String>())
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

    fn rewrite(query: &str) -> (String, Vec<String>) {
        let booleans: HashSet<String> =
            ["approved", "flag"].iter().map(|s| s.to_string()).collect();
        compare_booleans_as_booleans(query, &booleans)
    }

    #[test]
    fn string_literals_compared_with_a_boolean_variable_become_booleans() {
        assert_eq!(
            rewrite("/Net/approved/text()='true'"),
            (
                "/Net/approved/text()=true()".to_owned(),
                vec!["approved".to_owned()]
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
    fn other_comparisons_are_left_alone() {
        for query in [
            "/Net/name/text()='true'",
            "/Net/approved/text()='yes'",
            "/Net/approved/text() >= 'true'",
            "/Net/flag = 'true ' ",
            "/Net/x = 'it''s'",
            "'unterminated",
        ] {
            assert_eq!(rewrite(query), (query.to_owned(), Vec::new()), "{query}");
        }
    }
}
