//! `knhk worker`: a timer armed by one process fires in the worker, which then exits idle.

use serde_json::Value;

use crate::{DataDir, PREFIXES, path_str, stderr, stdout, temp_file};

#[test]
fn a_timer_armed_by_run_fires_in_the_worker() {
    let data = DataDir::new();
    let wf = format!(
        "{PREFIXES}<#spec> a yawl:Specification ; yawl:name \"Reminder\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ; \
         yawl:hasOutputCondition <#end> ; yawl:hasTask <#wait>, <#remind> .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#wait> ] .\n\
         <#wait> a yawl:Task ; knhk:role \"clerk\" ; yawl:hasTimer [ a yawl:Timer ; \
         yawl:hasTrigger yawl:TimerTriggerOnEnabled ; yawl:hasDurationParams [ yawl:ticks 200 ; \
         yawl:hasInterval yawl:TimerIntervalMsec ] ] ; yawl:flowsInto [ yawl:nextElementRef <#remind> ] .\n\
         <#remind> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
         <#end> a yawl:OutputCondition .\n"
    );
    let file = temp_file("reminder.ttl", &wf);
    // `--wait 0`: the run leaves its timer to the worker.
    let run = data.knhk(&["run", path_str(&file), "--json", "--wait", "0"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let doc: Value = serde_json::from_str(&stdout(&run)).expect("json");
    assert_eq!(doc["state"], "running");
    let case = doc["case_id"].as_str().expect("case id").to_owned();
    // The run process has ended; the worker arms the stored timer and fires it.
    let worker = data.knhk(&["worker", "--until-idle"]);
    assert!(worker.status.success(), "{}", stderr(&worker));
    assert!(
        stderr(&worker).contains("armed 1 timers"),
        "{}",
        stderr(&worker)
    );
    assert!(
        stderr(&worker).contains(&format!("worker: case {case}: timer of task wait fired")),
        "the worker says what it fires: {}",
        stderr(&worker)
    );
    let show = data.knhk(&["case", "history", &case, "--json"]);
    let history: Value = serde_json::from_str(&stdout(&show)).expect("json");
    let kinds: Vec<&str> = history
        .as_array()
        .or_else(|| history["history"].as_array())
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"timer_fired"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"case_state_changed"));
    let status = data.knhk(&["case", "show", &case]);
    assert!(stdout(&status).contains("completed"), "{}", stdout(&status));
}

#[test]
fn a_running_worker_fires_a_timer_armed_after_it_started_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    let data = DataDir::new();
    let wf = format!(
        "{PREFIXES}<#spec> a yawl:Specification ; yawl:name \"Later\" ; yawl:hasDecomposition <#net> .\n\
         <#net> a yawl:Net ; yawl:isRootNet true ; yawl:hasInputCondition <#start> ; \
         yawl:hasOutputCondition <#end> ; yawl:hasTask <#wait>, <#remind> .\n\
         <#start> a yawl:InputCondition ; yawl:flowsInto [ yawl:nextElementRef <#wait> ] .\n\
         <#wait> a yawl:Task ; knhk:role \"clerk\" ; yawl:hasTimer [ a yawl:Timer ; \
         yawl:hasTrigger yawl:TimerTriggerOnEnabled ; yawl:hasDurationParams [ yawl:ticks 100 ; \
         yawl:hasInterval yawl:TimerIntervalMsec ] ] ; yawl:flowsInto [ yawl:nextElementRef <#remind> ] .\n\
         <#remind> a yawl:Task ; yawl:flowsInto [ yawl:nextElementRef <#end> ] .\n\
         <#end> a yawl:OutputCondition .\n"
    );
    let file = temp_file("later.ttl", &wf);
    let mut worker = Command::new(env!("CARGO_BIN_EXE_knhk"))
        .args([
            "--data-dir",
            path_str(data.path()),
            "--timer-poll-ms",
            "50",
            "worker",
        ])
        .env_remove("KNHK_DATA_DIR")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the worker runs");
    // Every line the worker says, as it says it.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr_pipe = worker.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("the worker said nothing about {what}: {e}"))
    };
    let first = next_line("its start");
    assert!(first.contains("armed 0 timers"), "{first}");

    // Another process arms a timer after the worker started.
    // `--wait 0`: the run leaves its timer to the worker.
    let run = data.knhk(&["run", path_str(&file), "--json", "--wait", "0"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let doc: Value = serde_json::from_str(&stdout(&run)).expect("json");
    assert_eq!(doc["state"], "running");
    let case = doc["case_id"].as_str().expect("case id").to_owned();
    let mut said = Vec::new();
    loop {
        let line = next_line("the case the timer moves on");
        if line.contains(&case) && line.ends_with("case completed") {
            break;
        }
        said.push(line);
    }
    assert!(
        said.iter()
            .any(|l| l == &format!("worker: case {case}: timer of task wait fired")),
        "the worker says what it fires: {said:?}"
    );

    // SIGTERM stops it as gracefully as Ctrl-C.
    let pid = worker.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = worker.wait().expect("the worker ends");
    let rest: Vec<String> = lines.iter().collect();
    reader.join().expect("reader");
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("worker: terminated")),
        "{rest:?}"
    );
    let show = data.knhk(&["case", "show", &case]);
    assert!(stdout(&show).contains("completed"), "{}", stdout(&show));
}

#[test]
fn a_worker_until_idle_ends_while_a_case_waits_for_a_person() {
    let data = DataDir::new();
    let run = data.knhk(&[
        "run",
        &crate::example("loan_application.ttl"),
        "--data",
        r#"{"applicant": "Ada", "amount": 25000}"#,
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    // The case waits for an underwriter: nothing the engine itself can do.
    let worker = data.knhk(&["worker", "--until-idle"]);
    assert!(worker.status.success(), "{}", stderr(&worker));
    assert!(
        stderr(&worker).contains("worker: idle"),
        "{}",
        stderr(&worker)
    );
    let list = data.ok(&["case", "list", "--status", "running"]);
    assert!(list.contains("running"), "the case still waits: {list}");
}

#[test]
fn a_worker_until_idle_leaves_the_timer_of_a_suspended_case_for_its_resumption() {
    let data = DataDir::new();
    let text = std::fs::read_to_string(crate::example("invoice_reminder.ttl")).expect("example");
    let file = temp_file("soon.ttl", &text.replace("\"P3D\"", "\"PT2S\""));
    let doc: Value = serde_json::from_str(&stdout(&data.knhk(&[
        "run",
        path_str(&file),
        "--json",
        "--wait",
        "0",
    ])))
    .expect("json");
    let case = doc["case_id"].as_str().expect("case id").to_owned();
    data.ok(&["case", "suspend", &case]);
    // Its timer falls due within the bound, but a suspended case takes no timer: the worker
    // has nothing to do, and says so at once.
    let worker = data.knhk(&["worker", "--until-idle", "--idle-timers-ms", "600000"]);
    assert!(worker.status.success(), "{}", stderr(&worker));
    assert!(
        stderr(&worker).contains("worker: idle"),
        "{}",
        stderr(&worker)
    );
    assert!(
        !stderr(&worker).contains("timer of task"),
        "no timer fired: {}",
        stderr(&worker)
    );
}
