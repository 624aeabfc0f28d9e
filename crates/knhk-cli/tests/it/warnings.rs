//! `knhk validate` warnings: likely mistakes that do not make a definition invalid are printed
//! (and given in `--json`) without failing, unless `--strict`; the examples give none.

use std::path::PathBuf;

use serde_json::Value;

use crate::{PREFIXES, examples, knhk, path_str, stderr, stdout, temp_file};

/// A definition with one of each mistake: `ammount` read but never declared nor given by a
/// task, a url placeholder `{order}` the input has no field for, and an XOR split that may
/// take no flow.
/// (Each test writes its own file, `name`.)
fn careless(name: &str) -> PathBuf {
    temp_file(
        name,
        &format!(
            "{PREFIXES}\
             <#spec> a yawl:Specification ; yawl:hasDecomposition <#net> .\n\
             <#net> a yawl:Net ; yawl:id \"net\" ; yawl:isRootNet true ;\n\
                 yawl:hasLocalVariable [ yawl:name \"amount\" ] ;\n\
                 yawl:hasInputCondition <#start> ; yawl:hasOutputCondition <#end> ;\n\
                 yawl:hasTask <#check>, <#fetch>, <#small> .\n\
             <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#check> ] .\n\
             <#check> a yawl:Task ; yawl:id \"check\" ; yawl:hasSplit yawl:ControlTypeXor ;\n\
                 yawl:flowsInto\n\
                   [ yawl:nextElementRef <#fetch> ; knhk:predicate \"ammount > 100\" ; yawl:ordering 1 ],\n\
                   [ yawl:nextElementRef <#small> ; knhk:predicate \"amount <= 100\" ; yawl:ordering 2 ] .\n\
             <#fetch> a yawl:Task ; yawl:id \"fetch\" ; knhk:connector \"http\" ;\n\
                 knhk:setting [ knhk:key \"method\" ; knhk:value \"GET\" ] ,\n\
                   [ knhk:key \"url\" ; knhk:value \"https://api.example.org/orders/{{order}}\" ] ;\n\
                 yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#small> a yawl:Task ; yawl:id \"small\" ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
             <#end> a yawl:OutputCondition .\n"
        ),
    )
}

#[test]
fn validate_prints_warnings_without_failing() {
    let file = careless("careless-text.ttl");
    let name = path_str(&file);
    let out = knhk(&["validate", name]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(
        warnings,
        [
            format!(
                "warning: {name}: task \"check\" of net \"net\": the predicate of its flow to \
                 \"fetch\" reads ammount, which no variable declares and no task's output \
                 mapping gives"
            ),
            format!(
                "warning: {name}: task \"check\" of net \"net\": every flow of its XOR split has \
                 a predicate and none is the default flow: when all are false, the task fails"
            ),
            format!(
                "warning: {name}: task \"fetch\" of net \"net\": its url placeholder {{order}} \
                 has no source: the task's input may have no field order"
            ),
        ],
        "{text}"
    );
    assert!(
        text.starts_with(&format!("ok {name}: 1 net, 3 tasks")),
        "{text}"
    );
}

#[test]
fn validate_strict_fails_on_warnings() {
    let file = careless("careless-strict.ttl");
    let out = knhk(&["validate", "--strict", path_str(&file)]);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert_eq!(
        stderr(&out).trim(),
        "error: 3 warnings (--strict fails on warnings)"
    );
    // A clean file passes --strict.
    let clean = examples().join("order_approval.ttl");
    let out = knhk(&["validate", "--strict", path_str(&clean)]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
}

#[test]
fn validate_json_lists_the_warnings_with_their_codes() {
    let file = careless("careless-json.ttl");
    let out = knhk(&["validate", "--json", path_str(&file)]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let docs: Value = serde_json::from_slice(&out.stdout).expect("one JSON array");
    let warnings = docs[0]["warnings"].as_array().expect("a warnings array");
    let codes: Vec<(&str, &str)> = warnings
        .iter()
        .map(|w| {
            (
                w["code"].as_str().unwrap_or(""),
                w["task"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("unknown_name", "check"),
            ("xor_split_without_default", "check"),
            ("placeholder_without_source", "fetch"),
        ]
    );
    assert!(
        warnings[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("reads ammount")),
        "{docs:#}"
    );
}

/// Every definition file under examples/ but the benchmark's templates and the legacy files.
fn example_files() -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![examples()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("examples folder") {
            let path = entry.expect("an entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "bench" && name != "legacy" {
                    dirs.push(path);
                }
            } else if name.ends_with(".ttl") || name.ends_with(".yawl") {
                files.push(path_str(&path).to_owned());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_examples_give_no_warnings() {
    let files = example_files();
    assert!(files.len() > 40, "{files:?}");
    let mut args = vec!["validate", "--strict"];
    args.extend(files.iter().map(String::as_str));
    let out = knhk(&args);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("warning"))
            .collect::<Vec<_>>()
            .join("\n"),
        stderr(&out)
    );
    // The one legacy file that loads has a true finding: its compliance review's only flow is
    // guarded, with no default flow (the legacy files are kept unchanged).
    let swift = examples().join("legacy/swift_payment.ttl");
    let out = knhk(&["validate", "--json", path_str(&swift)]);
    let docs: Value = serde_json::from_slice(&out.stdout).expect("one JSON array");
    let codes: Vec<&str> = docs[0]["warnings"]
        .as_array()
        .expect("a warnings array")
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert_eq!(codes, ["xor_split_without_default"], "{docs:#}");
}
