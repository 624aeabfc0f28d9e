//! Reads the multiple-instance part of a YAWL XML task: bounds, threshold, creation mode, and
//! how its input is split into instances (accepted only where it translates to knhk's model).

use knhk_core::model::{CreationMode, Expression, MultipleInstance};
use roxmltree::Node;

use crate::xml::cx::{Cx, Loc, xsi_type};

const MI_CHILDREN: &[&str] = &[
    "minimum",
    "maximum",
    "threshold",
    "creationMode",
    "miDataInput",
    "miDataOutput",
];

/// Reads the multiple-instance part of a task, if it has one.
pub(crate) fn read(cx: &mut Cx, node: Node<'_, '_>, loc: &Loc) -> Option<MultipleInstance> {
    let typed = xsi_type(node) == Some("MultipleInstanceExternalTaskFactsType");
    let any = MI_CHILDREN
        .iter()
        .any(|name| cx.children(node, name).next().is_some());
    if !typed && !any {
        return None;
    }
    let minimum = cx.number::<u32>(node, "minimum", loc);
    let maximum = match cx.child_text(node, "maximum", loc) {
        Some(m) if m == "unbounded" || m == "infinite" => None,
        Some(_) => cx.number::<u32>(node, "maximum", loc),
        None => None,
    };
    let threshold = cx.number::<u32>(node, "threshold", loc);
    let creation = match cx.child(node, "creationMode", loc) {
        None => CreationMode::Static,
        Some(mode) => match mode.attribute("code").map(str::trim) {
            Some("static") => CreationMode::Static,
            Some("dynamic") => CreationMode::Dynamic,
            other => {
                cx.problem(
                    loc,
                    format!(
                        "<creationMode> code must be static or dynamic, not {:?}",
                        other.unwrap_or("")
                    ),
                );
                CreationMode::Static
            }
        },
    };
    let mut split = None;
    let mut item_variable = "item".to_owned();
    if let Some(input) = cx.child(node, "miDataInput", loc) {
        cx.only_known(
            input,
            &["expression", "splittingExpression", "formalInputParam"],
            loc,
        );
        split = splitting(cx, input, loc);
        if let Some(param) = cx.child_text(input, "formalInputParam", loc) {
            item_variable = param;
        }
    }
    let join_variable = cx
        .child(node, "miDataOutput", loc)
        .and_then(|output| cx.child_text(output, "resultAppliedToLocalVariable", loc));
    Some(MultipleInstance {
        minimum: minimum.unwrap_or(1),
        maximum,
        // A threshold of 0 cannot be met by completing instances; it means "no threshold".
        threshold: threshold.filter(|t| *t > 0),
        creation,
        split,
        item_variable,
        join_variable,
    })
}

/// Reads how a multiple-instance task's input is split into instances. knhk splits a list in
/// the case data, one instance per item; YAWL runs the `expression` query over the net's data
/// and the `splittingExpression` over its result. The pair is accepted when the expression is
/// XPath that translates and the splitting only takes each child of the result, as editors
/// write it (`/x/*`, `for $s in /x/* return $s`, or wrapping each in one element).
fn splitting(cx: &mut Cx, input: Node<'_, '_>, loc: &Loc) -> Option<Expression> {
    let query = |cx: &mut Cx, name: &str| {
        cx.child(input, name, loc)
            .and_then(|e| e.attribute("query"))
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty())
    };
    let expression = query(cx, "expression");
    let splitting = query(cx, "splittingExpression");
    let (Some(expression), Some(splitting)) = (expression, splitting) else {
        cx.problem(
            loc,
            "<miDataInput> needs an <expression query> and a <splittingExpression query>",
        );
        return None;
    };
    // XQuery (an element constructor, a FLWOR or conditional expression) is named as such:
    // the XPath translation would only report the first character it cannot read.
    if let Some(construct) = xquery_construct(&expression) {
        cx.problem(
            loc,
            format!(
                "the multiple-instance input (<miDataInput><expression query>) {expression:?} is {construct}, which knhk does not run: knhk splits the list an XPath path names (\"/Net/items\")"
            ),
        );
        return None;
    }
    // knhk's split expressions are CEL; the XPath is translated here, as the core would.
    let cel = match knhk_core::expr::translate_xpath(&expression) {
        Ok(cel) => cel,
        Err(e) => {
            cx.problem(
                loc,
                format!("the multiple-instance input (<miDataInput><expression query>) is not supported: {e}"),
            );
            return None;
        }
    };
    if !takes_each_child(&splitting) {
        cx.problem(
            loc,
            format!(
                "the multiple-instance splitting query {splitting:?} is not supported: knhk makes one instance per item of the list the <expression> gives, so the splitting query must take each child of it (\"/x/*\" or \"for $s in /x/* return $s\")"
            ),
        );
        return None;
    }
    Some(Expression::cel(cel))
}

/// Names the XQuery construct an expression is built on, if it is more than XPath.
fn xquery_construct(expression: &str) -> Option<&'static str> {
    let compact: String = expression.split_whitespace().collect::<Vec<_>>().join(" ");
    if compact.starts_with('<') {
        Some("an XQuery element constructor (<x>{...}</x>)")
    } else if ["for $", "let $"].iter().any(|k| compact.starts_with(k)) {
        Some("an XQuery FLWOR expression (for/let ... return)")
    } else if compact.starts_with("if (") || compact.starts_with("if(") {
        Some("an XQuery conditional expression (if ... then ... else)")
    } else {
        None
    }
}

/// Tells whether an XQuery splitting expression takes each child of the input as it is (or
/// wrapped in one element named by the instance's parameter).
fn takes_each_child(query: &str) -> bool {
    let compact: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if is_children_path(&compact) {
        return true;
    }
    let Some(rest) = compact.strip_prefix("for $") else {
        return false;
    };
    let Some((var, rest)) = rest.split_once(" in ") else {
        return false;
    };
    let Some((path, result)) = rest.split_once(" return ") else {
        return false;
    };
    if !is_name(var) || !is_children_path(path.trim()) {
        return false;
    }
    let result: String = result.chars().filter(|c| !c.is_whitespace()).collect();
    let item = format!("${var}");
    if result == item {
        return true;
    }
    // `<x>{$s/*}</x>` or `<x>{$s/text()}</x>`: the item's content under the parameter's name.
    let Some(open) = result.strip_prefix('<') else {
        return false;
    };
    let Some((tag, body)) = open.split_once('>') else {
        return false;
    };
    is_name(tag)
        && [format!("{{{item}/*}}"), format!("{{{item}/text()}}")]
            .iter()
            .any(|inner| body == format!("{inner}</{tag}>"))
}

/// Tells whether `path` is an absolute path of plain steps ending in `/*`.
fn is_children_path(path: &str) -> bool {
    let Some(steps) = path.strip_suffix("/*") else {
        return false;
    };
    let Some(steps) = steps.strip_prefix('/') else {
        return false;
    };
    steps.split('/').all(is_name)
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_xquery_construct_of_an_input_expression() {
        assert!(
            xquery_construct(
                "<legs> {if (count(/data/legs/*) > 0) then /data/legs/* else () }</legs>"
            )
            .is_some_and(|c| c.contains("element constructor"))
        );
        assert!(
            xquery_construct("for $l in /data/legs/* return $l")
                .is_some_and(|c| c.contains("FLWOR"))
        );
        assert!(
            xquery_construct("if (/data/a) then /data/a else /data/b")
                .is_some_and(|c| c.contains("conditional"))
        );
        assert_eq!(xquery_construct("/Net/items"), None);
    }

    #[test]
    fn recognises_splitting_queries_that_take_each_child() {
        for query in [
            "/items/*",
            "/Net/order/items/*",
            "for $s in /items/* return $s",
            "for $s in /items/*\n  return <item>{$s/*}</item>",
            "for $s in /items/* return <item>{$s/text()}</item>",
        ] {
            assert!(takes_each_child(query), "{query}");
        }
        for query in [
            "/items",
            "//items/*",
            "for $s in /items/*[1] return $s",
            "for $s in /items/* return $t",
            "for $s in /items/* return <item>{$s}</other>",
            "for $d in /songlist/* return <songLocal> { for $e in $d/* return $e } </songLocal>",
            "",
        ] {
            assert!(!takes_each_child(query), "{query}");
        }
    }
}
