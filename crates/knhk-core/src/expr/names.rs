//! The names an expression reads and the keys it builds, found on its syntax tree without
//! running it: what the static checks of a definition (`knhk validate`) compare with the
//! variables a workflow declares and the data its tasks produce.

use std::collections::BTreeSet;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::CompiledExpr;

impl CompiledExpr {
    /// Returns the variables the expression reads from its environment (case data keys,
    /// `data`, `output`, an instance's item), without the names its comprehension macros
    /// (`all`, `exists`, `map`, `filter`...) bind themselves.
    pub fn free_variables(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut bound = Vec::new();
        collect(&self.tree, &mut bound, &mut found);
        found
    }

    /// Returns the keys of the object the expression builds when it is a map literal whose
    /// keys are all string literals (`{'approved': true}`); `None` when it builds anything
    /// else, whose keys cannot be known before it runs.
    pub fn literal_keys(&self) -> Option<BTreeSet<String>> {
        let Expr::Map(map) = &self.tree.expr else {
            return None;
        };
        map.entries
            .iter()
            .map(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => match &e.key.expr {
                    Expr::Literal(LiteralValue::String(key)) => Some(key.to_string()),
                    _ => None,
                },
                EntryExpr::StructField(_) => None,
            })
            .collect()
    }
}

/// Adds to `found` every identifier of `e` not in `bound` (the comprehension variables in
/// scope).
fn collect(e: &IdedExpr, bound: &mut Vec<String>, found: &mut BTreeSet<String>) {
    match &e.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            // `@`-names are the parser's own accumulators.
            if !name.starts_with('@') && !bound.contains(name) {
                found.insert(name.clone());
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                collect(target, bound, found);
            }
            for arg in &call.args {
                collect(arg, bound, found);
            }
        }
        Expr::Select(select) => collect(&select.operand, bound, found),
        Expr::List(list) => {
            for item in &list.elements {
                collect(item, bound, found);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(e) => {
                        collect(&e.key, bound, found);
                        collect(&e.value, bound, found);
                    }
                    EntryExpr::StructField(f) => collect(&f.value, bound, found),
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(e) => {
                        collect(&e.key, bound, found);
                        collect(&e.value, bound, found);
                    }
                    EntryExpr::StructField(f) => collect(&f.value, bound, found),
                }
            }
        }
        Expr::Comprehension(c) => {
            // The range is read outside the comprehension's own names.
            collect(&c.iter_range, bound, found);
            collect(&c.accu_init, bound, found);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.iter().cloned());
            bound.push(c.accu_var.clone());
            collect(&c.loop_cond, bound, found);
            collect(&c.loop_step, bound, found);
            collect(&c.result, bound, found);
            bound.truncate(before);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::Expression;

    fn compiled(source: &str) -> CompiledExpr {
        CompiledExpr::compile(&Expression::cel(source)).unwrap()
    }

    fn names(source: &str) -> Vec<String> {
        compiled(source).free_variables().into_iter().collect()
    }

    #[test]
    fn free_variables_leave_out_what_macros_bind_and_fields_selected() {
        assert_eq!(
            names("amount > 1000 && customer.vip"),
            ["amount", "customer"]
        );
        assert_eq!(names("items.all(i, i.price < limit)"), ["items", "limit"]);
        assert_eq!(
            names("orders.map(o, o.lines.exists(l, l.sku == sku))"),
            ["orders", "sku"]
        );
        assert_eq!(
            names("has(output.approved) && size(name) > 0"),
            ["name", "output"]
        );
        assert_eq!(names("{'total': a + b, 'n': [c]}"), ["a", "b", "c"]);
        assert!(names("1 + 2 == 3").is_empty());
    }

    #[test]
    fn literal_keys_are_known_only_for_a_map_literal_with_string_keys() {
        let keys = compiled("{'approved': true, 'by': user}").literal_keys();
        assert_eq!(
            keys.map(|k| k.into_iter().collect::<Vec<_>>()),
            Some(vec!["approved".to_owned(), "by".to_owned()])
        );
        assert_eq!(compiled("output").literal_keys(), None);
        assert_eq!(compiled("{key: 1}").literal_keys(), None);
    }
}
