//! `knhk-bench lockchain` on a few cases: it prints W1 with the lockchain off and on at both
//! concurrencies with their ratio, the receipt time, the receipt sizes at 1k, 1M and 1G
//! leaves, and the verification speed of its own log (which must verify).

use std::process::Command;

#[test]
fn a_quick_lockchain_bench_prints_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_knhk-bench"))
        .args([
            "lockchain",
            "--quick",
            "--cases",
            "20",
            "--receipts",
            "20",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("knhk-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "knhk-bench lockchain failed: {}\n{stdout}\n{}",
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
        "lockchain",
        "cases/s",
        "step p50",
        "step p99",
    ] {
        assert!(lines[header].contains(column), "no {column} in\n{stdout}");
    }
    let expected = [("1", "off"), ("1", "on"), ("64", "off"), ("64", "on")];
    for (row, (concurrency, mode)) in lines[header + 1..].iter().zip(expected) {
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            words.get(..4),
            Some(&["W1", concurrency, mode, "20"][..]),
            "{row}\n{stdout}"
        );
        let per_s: f64 = words[4].parse().unwrap_or_else(|_| panic!("{row}"));
        assert!(per_s > 0.0, "{row}");
    }
    for concurrency in ["1", "64"] {
        let line = format!("W1 with {concurrency} concurrent cases: throughput on/off = ");
        assert!(stdout.contains(&line), "no {line:?} in\n{stdout}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("receipt production (20 receipts") && l.contains("p99")),
        "{stdout}"
    );
    // The proof of a tree of n leaves has ceil(log2 n) hashes: 10, 20 and 30; each adds its
    // base64 to the JSON and its 32 bytes (and a tag and length) to the protobuf.
    let sizes: Vec<Vec<usize>> = ["1k", "1M", "1G"]
        .iter()
        .map(|name| {
            let row = lines
                .iter()
                .find(|l| l.split_whitespace().next() == Some(*name))
                .unwrap_or_else(|| panic!("no {name} row in\n{stdout}"));
            row.split_whitespace()
                .skip(1)
                .map(|w| w.parse().unwrap_or_else(|_| panic!("{row}")))
                .collect()
        })
        .collect();
    assert_eq!(sizes.iter().map(|s| s[0]).collect::<Vec<_>>(), [10, 20, 30]);
    for pair in sizes.windows(2) {
        assert!(pair[1][1] > pair[0][1] + 10 * 44, "{stdout}");
        assert!(pair[1][2] >= pair[0][2] + 10 * 34, "{stdout}");
    }
    let verification = lines
        .iter()
        .find(|l| l.starts_with("verification: "))
        .unwrap_or_else(|| panic!("no verification line in\n{stdout}"));
    assert!(verification.ends_with("events/s"), "{verification}");
}
