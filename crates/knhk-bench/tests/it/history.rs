//! `knhk-bench history` on short histories: it fills a case per length and prints a row per
//! operation, length and setting (snapshots off and on), each with its figures, including the
//! `knhk` commands when given the binary.

use std::process::Command;

#[test]
fn a_small_history_run_prints_every_operation_off_and_on() {
    let dir = tempfile::tempdir().unwrap();
    let knhk = std::path::Path::new(env!("CARGO_BIN_EXE_knhk-bench"))
        .with_file_name(format!("knhk{}", std::env::consts::EXE_SUFFIX));
    let mut command = Command::new(env!("CARGO_BIN_EXE_knhk-bench"));
    command
        .args(["history", "--events", "150,300", "--samples", "2"])
        .args(["--snapshot-every", "50", "--data-dir"])
        .arg(dir.path());
    // The `knhk` binary sits beside this one when the workspace is built.
    let with_knhk = knhk.exists();
    if with_knhk {
        command.arg("--knhk").arg(&knhk);
    }
    let out = command.output().expect("knhk-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "knhk-bench history failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for n in ["150", "300"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("fill {n}: ")) && l.contains("steps/s")),
            "no fill line for {n} in\n{stdout}"
        );
    }
    let header = lines
        .iter()
        .position(|l| l.starts_with("operation"))
        .unwrap_or_else(|| panic!("no table header in\n{stdout}"));
    let rows: Vec<&str> = lines[header + 1..]
        .iter()
        .copied()
        .take_while(|l| !l.is_empty())
        .collect();
    let mut operations = vec![
        "case show",
        "case show --json",
        "case history --limit 100",
        "workitem claim",
    ];
    let per_length = 2 * operations.len() + if with_knhk { 6 } else { 0 };
    assert_eq!(rows.len(), 2 * per_length, "{stdout}");
    if with_knhk {
        operations.extend([
            "knhk case show --json",
            "knhk case history --limit 100",
            "knhk workitem claim",
        ]);
    }
    for n in ["150", "300"] {
        for operation in &operations {
            for setting in ["off", "on"] {
                let row = rows
                    .iter()
                    .find(|row| {
                        row.strip_prefix(operation).is_some_and(|rest| {
                            let words: Vec<&str> = rest.split_whitespace().collect();
                            words.first() == Some(&n) && words.get(1) == Some(&setting)
                        })
                    })
                    .unwrap_or_else(|| panic!("no row {operation} {n} {setting} in\n{stdout}"));
                let words: Vec<&str> = row[operation.len()..].split_whitespace().collect();
                let [_, _, runs, p50, "ms", p99, "ms", rss, "MiB"] = words[..] else {
                    panic!("unexpected row {row:?} in\n{stdout}");
                };
                assert_eq!(runs, "2", "{row}");
                let number =
                    |text: &str| -> f64 { text.parse().unwrap_or_else(|_| panic!("{row}")) };
                assert!(number(p50) > 0.0 && number(p50) <= number(p99), "{row}");
                assert!(number(rss) > 0.0, "{row}");
            }
        }
    }
}
