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
    let run = data.knhk(&["run", path_str(&file), "--json"]);
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
