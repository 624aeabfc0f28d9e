//! `knhk-bench bench` on a few cases: it prints the figures of every scenario (cases/s, step
//! latency percentiles, commits per fsync) and the peak memory, on SQLite files in the
//! directory it is given.

use std::process::Command;

#[test]
fn a_quick_bench_prints_every_scenario_and_the_peak_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_knhk-bench"))
        .args(["bench", "--quick", "--cases", "20", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("knhk-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "knhk-bench bench failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("workload"))
        .unwrap_or_else(|| panic!("no table header in\n{stdout}"));
    for column in [
        "concurrency",
        "cases",
        "cases/s",
        "step p50",
        "step p99",
        "commits/batch",
        "store",
        "trips/case",
    ] {
        assert!(
            lines[header].contains(column),
            "no {column} column in\n{stdout}"
        );
    }
    // H10 with one case at a time runs a tenth of the cases.
    let expected = [
        ("W1", "1", "20"),
        ("W1", "64", "20"),
        ("H10", "1", "2"),
        ("H10", "64", "20"),
    ];
    for (row, (workload, concurrency, cases)) in lines[header + 1..].iter().zip(expected) {
        let words: Vec<&str> = row.split_whitespace().collect();
        // The store of every row is SQLite (no `--store` given); round trips are PostgreSQL's.
        let [
            name,
            "sqlite",
            "1",
            c,
            n,
            per_s,
            p50,
            "ms",
            p99,
            "ms",
            batch,
            "-",
        ] = words[..]
        else {
            panic!("unexpected row {row:?} in\n{stdout}");
        };
        assert_eq!((name, c, n), (workload, concurrency, cases), "{row}");
        let number = |text: &str| -> f64 { text.parse().unwrap_or_else(|_| panic!("{row}")) };
        assert!(number(per_s) > 0.0, "{row}");
        assert!(number(p50) > 0.0 && number(p50) <= number(p99), "{row}");
        assert!(number(batch) >= 1.0, "{row}");
    }
    let rss = lines
        .iter()
        .find_map(|l| l.strip_prefix("peak RSS: "))
        .unwrap_or_else(|| panic!("no peak RSS in\n{stdout}"));
    let mib: f64 = rss
        .strip_suffix(" MiB (VmHWM)")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected peak RSS {rss:?}"));
    assert!(mib > 0.0, "{rss}");
    // Every run went to a fresh file of its own in the directory given.
    for file in [
        "W1-c1-r1.db",
        "W1-c64-r1.db",
        "H10-c1-r1.db",
        "H10-c64-r1.db",
    ] {
        assert!(dir.path().join(file).exists(), "{file} is missing");
    }
}
