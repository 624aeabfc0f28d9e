//! `knhk-bench scale` on small stores: it fills a store per size with waiting cases and prints
//! a row per operation and size, with percentiles and the peak memory.

use std::process::Command;

#[test]
fn a_small_scale_run_prints_every_operation_for_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_knhk-bench"))
        .args([
            "scale",
            "--cases",
            "40,80",
            "--samples",
            "5",
            "--list-runs",
            "2",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("knhk-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "knhk-bench scale failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for n in ["40", "80"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("fill {n}: ")) && l.contains("cases/s")),
            "no fill line for {n} in\n{stdout}"
        );
    }
    let header = lines
        .iter()
        .position(|l| l.starts_with("operation"))
        .unwrap_or_else(|| panic!("no table header in\n{stdout}"));
    let operations = [
        ("worker start-up", "1"),
        ("case show", "5"),
        ("case show --json", "5"),
        ("workitem complete", "5"),
        ("case create, shortest q", "5"),
        ("case list", "2"),
        ("case list, pages of 1000", "2"),
        ("workitem list --role", "2"),
        ("workitem list --user", "2"),
    ];
    let rows: Vec<&str> = lines[header + 1..]
        .iter()
        .copied()
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 2 * operations.len(), "{stdout}");
    for (row, (n, (operation, runs))) in rows.iter().zip(
        ["40", "80"]
            .into_iter()
            .flat_map(|n| operations.iter().map(move |o| (n, o))),
    ) {
        let rest = row
            .strip_prefix(operation)
            .unwrap_or_else(|| panic!("expected {operation} in {row:?}\n{stdout}"));
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [cases, r, p50, "ms", p99, "ms", rss, "MiB"] = words[..] else {
            panic!("unexpected row {row:?} in\n{stdout}");
        };
        assert_eq!((cases, r), (n, *runs), "{row}");
        let number = |text: &str| -> f64 { text.parse().unwrap_or_else(|_| panic!("{row}")) };
        assert!(number(p50) > 0.0 && number(p50) <= number(p99), "{row}");
        assert!(number(rss) > 0.0, "{row}");
    }
    // Each operation's p50 at both sizes, and the exponent of its growth between them.
    let growth = lines
        .iter()
        .position(|l| l.starts_with("p50 by store size"))
        .unwrap_or_else(|| panic!("no growth table in\n{stdout}"));
    assert!(lines[growth].contains("exp 40-80"), "{}", lines[growth]);
    for (operation, _) in operations {
        let row = lines[growth + 1..]
            .iter()
            .find(|l| {
                l.strip_prefix(operation)
                    .is_some_and(|rest| rest.starts_with("  "))
            })
            .unwrap_or_else(|| panic!("no growth of {operation} in\n{stdout}"));
        let words: Vec<&str> = row[operation.len()..].split_whitespace().collect();
        let [t40, "ms", t80, "ms", exponent] = words[..] else {
            panic!("unexpected growth row {row:?}");
        };
        let (t40, t80): (f64, f64) = (t40.parse().unwrap(), t80.parse().unwrap());
        let expected = (t80 / t40).ln() / 2f64.ln();
        let exponent: f64 = exponent.parse().unwrap();
        // The times are printed rounded to 0.01 ms, the exponent to 0.01.
        let slack = 0.01 / t40.min(t80) / 2f64.ln() + 0.006;
        assert!(
            (exponent - expected).abs() <= slack,
            "{row}: {exponent} vs {expected}"
        );
    }
    // A data directory per size, as `knhk --data-dir` takes it.
    for n in ["40", "80"] {
        let data_dir = dir.path().join(format!("scale-{n}"));
        assert!(data_dir.join("knhk.db").exists(), "{n}");
        assert!(data_dir.join("directory.json").exists(), "{n}");
    }
}

#[test]
fn compare_fill_fills_with_each_kind_of_id_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_knhk-bench"))
        .args(["scale", "--compare-fill", "--cases", "30", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("knhk-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("30 ")).collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    for (row, (ids, cache)) in rows.iter().zip([
        ("v4 (random)", "2 MiB"),
        ("v7 (time-ordered)", "2 MiB"),
        ("v4 (random)", "32 MiB"),
        ("v7 (time-ordered)", "32 MiB"),
    ]) {
        assert!(row.contains(ids) && row.contains(cache), "{row}");
    }
}
