//! `knhk-bench connectors` on a few cases against the PostgreSQL and NATS servers of this
//! machine: it prints a row per workflow and pool size, each with its rate and latencies, and the
//! pool opened at most its maximum.

use std::process::Command;

#[test]
fn a_short_connectors_run_prints_a_row_per_workflow_and_pool_size() {
    let url = std::env::var("KNHK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let out = Command::new(env!("CARGO_BIN_EXE_knhk-bench"))
        .args([
            "connectors",
            "--cases",
            "20",
            "--concurrency",
            "8",
            "--postgres",
            &url,
        ])
        .output()
        .expect("knhk-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "knhk-bench connectors failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| P10 ") || l.starts_with("| N10 "))
        .map(|l| {
            l.split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows.len(),
        4,
        "a row per workflow and pool size in\n{stdout}"
    );
    let expected = [("P10", "16"), ("P10", "1"), ("N10", "16"), ("N10", "1")];
    for (row, (workflow, pool)) in rows.iter().zip(expected) {
        assert_eq!(row.len(), 8, "{row:?}");
        assert_eq!((row[0], row[1]), (workflow, pool));
        let rate: f64 = row[2].parse().unwrap();
        assert!(rate > 0.0, "{row:?}");
        for latency in &row[3..7] {
            assert!(latency.ends_with(" ms"), "{row:?}");
        }
        let opened: usize = row[7].parse().unwrap();
        assert!((1..=pool.parse().unwrap()).contains(&opened), "{row:?}");
    }
}
