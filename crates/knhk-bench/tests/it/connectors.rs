//! `knhk-bench connectors` on a few cases against the PostgreSQL server of this machine: it
//! prints a row per pool size, each with its rate and latencies, and the pool opened at most its
//! maximum.

use std::process::Command;

#[test]
fn a_short_connectors_run_prints_a_row_per_pool_size() {
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
        .filter(|l| l.starts_with("| 16 ") || l.starts_with("| 1 "))
        .map(|l| {
            l.split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2, "a row per pool size in\n{stdout}");
    for (row, pool) in rows.iter().zip(["16", "1"]) {
        assert_eq!(row.len(), 7, "{row:?}");
        assert_eq!(row[0], pool);
        let rate: f64 = row[1].parse().unwrap();
        assert!(rate > 0.0, "{row:?}");
        for latency in &row[2..6] {
            assert!(latency.ends_with(" ms"), "{row:?}");
        }
        let opened: usize = row[6].parse().unwrap();
        assert!((1..=pool.parse().unwrap()).contains(&opened), "{row:?}");
    }
}
