#!/usr/bin/env python3
"""Records the CLI scenarios of the corpus of histories (tests/histories/cli/).

Each scenario drives the real `knhk` binary on a fresh data directory, then copies the case's
stored events out of knhk.db, one per line in the stored form (`{"seq":..,"time":..,"kind":
<payload>}`, the JSON of knhk_core::Event), and writes a manifest whose end state is the
store's snapshot of the case (status, data, marking, work items, timers) plus the enabled
trigger tasks. A history that exists already is never written again: recorded histories are
never edited. Usage, from the repository root:

    cargo build -p knhk-cli
    python3 crates/knhk-spec/tests/histories/record_cli.py   # KNHK=path/to/knhk to choose it

The HTTP scenarios need 127.0.0.1:18765 free: the script serves the charge URL there.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
OUT = HERE / "cli"
KNHK = os.environ.get("KNHK") or str(
    Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "knhk"
)
LOAN = "examples/loan_application.ttl"
ORDER = "examples/order_approval.ttl"
PAYMENT = "crates/knhk-spec/tests/histories/cli/workflows/payment_trigger.ttl"
CHARGE = "crates/knhk-spec/tests/histories/cli/workflows/http_charge.ttl"
CHARGE_FF = "crates/knhk-spec/tests/histories/cli/workflows/http_charge_failure_flow.ttl"
REVIEW = "crates/knhk-spec/tests/histories/cli/workflows/review_timer.ttl"
RUNAWAY = "crates/knhk-spec/tests/histories/cli/workflows/runaway_loop.ttl"
LEAVE = "examples/yawl/leave_request.yawl"
QUOTES = "examples/patterns/wcp15_mi_no_runtime_knowledge.ttl"
# Who may distribute work items left to run time: the administrators' role (`admin`).
DIRECTORY = {"roles": {"admin": ["ada"], "clerk": ["ann", "bob"]}}


class Charge(BaseHTTPRequestHandler):
    """The charge service: orders named `bad...` are refused with a 400, `flaky...` ones the
    first time only, others charged."""

    flaky_seen = set()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        order = self.path.rsplit("/", 1)[-1]
        first_flaky = order.startswith("flaky") and order not in Charge.flaky_seen
        if order.startswith("flaky"):
            Charge.flaky_seen.add(order)
        if order.startswith("bad") or first_flaky:
            status, body = 400, {"error": "card declined"}
        else:
            status, body = 200, {"charged": True, "receipt": f"r-{order}"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Scenario:
    """A fresh data directory and the commands run on it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="knhk-corpus-")

    def knhk(self, *args, check=True):
        out = subprocess.run(
            [KNHK, "--data-dir", self.dir, *args], capture_output=True, text=True, cwd=ROOT
        )
        if check and out.returncode != 0:
            sys.exit(f"knhk {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def json(self, *args, check=True):
        return json.loads(self.knhk(*args, "--json", check=check))

    def run(self, workflow, data, check=True):
        """Runs a workflow file with this data; returns the case id."""
        return self.json("run", workflow, "--data", json.dumps(data), check=check)["case_id"]

    def db(self):
        return sqlite3.connect(Path(self.dir) / "knhk.db")

    def item(self, case, task):
        """Returns the id of the live work item of `task` in `case`."""
        with self.db() as db:
            row = db.execute(
                "SELECT id FROM work_items WHERE case_id = ? AND task = ?", (case, task)
            ).fetchone()
        if row is None:
            sys.exit(f"case {case} has no work item of {task}")
        return row[0]

    def complete(self, case, task, output, user="uma", check=True):
        item = self.item(case, task)
        self.knhk("workitem", "complete", item, "--user", user, "--output", json.dumps(output),
                  check=check)

    def record(self, name, workflow, case, about):
        history = OUT / f"{name}.events.jsonl"
        if history.exists():
            print(f"kept     {name} (recorded histories are never edited)")
            return
        with self.db() as db:
            events = db.execute(
                "SELECT seq, time, payload FROM events WHERE case_id = ? ORDER BY seq", (case,)
            ).fetchall()
            status, data, marking, wf = db.execute(
                "SELECT status, data, marking, workflow FROM cases WHERE id = ?", (case,)
            ).fetchone()
            items = db.execute(
                "SELECT id, task, net_instance, instance, state, owner FROM work_items"
                " WHERE case_id = ? ORDER BY id",
                (case,),
            ).fetchall()
            timers = db.execute(
                "SELECT id, fires_at FROM timers WHERE case_id = ? ORDER BY id", (case,)
            ).fetchall()
            (spec,) = db.execute("SELECT spec FROM workflows WHERE id = ?", (wf,)).fetchone()
        lines = [f'{{"seq":{seq},"time":{t},"kind":{payload}}}\n' for seq, t, payload in events]
        end = {
            "status": status,
            "data": json.loads(data),
            "marking": [
                [m["net_instance"], m["condition"], m["tokens"]] for m in json.loads(marking)
            ],
            "work_items": [
                {
                    "item": i,
                    "task": task,
                    "net_instance": ni,
                    "instance": inst,
                    "state": state,
                    "owner": owner,
                    "connector": None,
                }
                for i, task, ni, inst, state, owner in items
            ],
            "timers": [{"timer": t, "fires_at": at} for t, at in timers],
            "triggers": triggers(json.loads(spec), [json.loads(p) for _, _, p in events]),
        }
        manifest = {"workflow": workflow, "recorded_by": f"record_cli.py: {about}",
                    "case": case, "end": end}
        OUT.mkdir(parents=True, exist_ok=True)
        history.write_text("".join(lines))
        (OUT / f"{name}.manifest.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        )
        print(f"recorded {name}: {len(lines)} events, {status}")

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def triggers(spec, kinds):
    """Returns the trigger tasks that are enabled at the end of the history, as the CLI's
    `case show` folds it: enabled, and not since started, withdrawn, cancelled or failed."""
    events = {
        t["id"]: t["binding"]["event"]
        for net in spec["nets"]
        for t in net["tasks"]
        if t["binding"]["kind"] == "trigger"
    }
    enabled = []
    for k in kinds:
        if k["type"] == "task_enabled":
            enabled.append(k["task"])
        elif k["type"] in ("task_started", "task_withdrawn", "task_cancelled", "task_failed"):
            enabled = [t for t in enabled if t != k["task"]]
    return [
        {"task": t["task"], "net_instance": t["net_instance"], "event": events[t["task"]]}
        for t in enabled
        if t["task"] in events
    ]


def scenarios():
    s = Scenario()
    case = s.run(LOAN, {"applicant": "Ada", "amount": 5000})
    s.record("loan_small_approved_by_policy", LOAN, case, "knhk run, amount 5000")
    case = s.run(LOAN, {"applicant": "Bo", "amount": 0}, check=False)
    s.record("loan_rejected_by_the_data_check", LOAN, case, "knhk run, amount 0")
    case = s.run(LOAN, {"applicant": "Cy", "amount": 25000})
    s.record("loan_waits_for_the_underwriter", LOAN, case, "knhk run, amount 25000")
    s.complete(case, "underwriter_decision", {"approved": True})
    s.record("loan_approved_by_the_underwriter", LOAN, case,
             "knhk run, amount 25000; workitem complete approved true")
    case = s.run(LOAN, {"applicant": "Di", "amount": 40000})
    item = s.item(case, "underwriter_decision")
    s.knhk("workitem", "claim", item, "--user", "ulf")
    s.record("loan_claimed_by_an_underwriter", LOAN, case,
             "knhk run, amount 40000; workitem claim by ulf")
    s.knhk("workitem", "start", item, "--user", "ulf")
    s.record("loan_started_by_an_underwriter", LOAN, case,
             "knhk run, amount 40000; workitem claim, start by ulf")
    s.complete(case, "underwriter_decision", {"approved": False}, user="ulf")
    s.record("loan_declined_by_the_underwriter", LOAN, case,
             "knhk run, amount 40000; workitem claim, start, complete approved false by ulf")
    s.close()

    s = Scenario()
    case = s.run(ORDER, {"amount": 500})
    s.record("order_small_approved_automatically", ORDER, case, "knhk run, amount 500")
    case = s.run(ORDER, {"amount": 1500})
    s.record("order_waits_for_the_manager", ORDER, case, "knhk run, amount 1500")
    s.complete(case, "manager_approval", {"approved": True}, user="meg")
    s.record("order_approved_by_the_manager", ORDER, case,
             "knhk run, amount 1500; workitem complete by meg")
    case = s.run(ORDER, {"amount": 2000})
    s.knhk("case", "cancel", case, "--reason", "customer withdrew", check=False)
    s.record("order_cancelled_while_waiting", ORDER, case,
             "knhk run, amount 2000; case cancel while the manager's item is offered")
    case = s.run(ORDER, {"amount": 3000})
    s.knhk("case", "suspend", case)
    s.record("order_suspended", ORDER, case, "knhk run, amount 3000; case suspend")
    s.knhk("case", "resume", case)
    s.record("order_resumed", ORDER, case, "knhk run, amount 3000; case suspend, resume")
    s.complete(case, "manager_approval", {}, user="meg")
    s.record("order_resumed_and_completed", ORDER, case,
             "knhk run, amount 3000; case suspend, resume; workitem complete")
    wf = s.json("workflow", "register", ORDER)["id"]
    case = s.json("case", "create", wf, "--data", '{"amount": 700}')["case_id"]
    s.record("order_created_not_started", ORDER, case, "knhk case create, amount 700")
    s.knhk("case", "execute", case)
    s.record("order_created_then_executed", ORDER, case,
             "knhk case create, amount 700; case execute")
    case = s.json("case", "create", wf, "--data", '{"amount": 800}')["case_id"]
    s.knhk("case", "cancel", case, "--reason", "never started", check=False)
    s.record("order_cancelled_before_it_started", ORDER, case,
             "knhk case create, amount 800; case cancel")
    s.close()

    s = Scenario()
    case = s.run(PAYMENT, {"invoice": "I-7"})
    s.record("payment_waits_for_the_trigger", PAYMENT, case, "knhk run")
    s.knhk("case", "trigger", case, "payment_received", "--data", '{"paid": 42}')
    s.record("payment_triggered", PAYMENT, case, "knhk run; case trigger payment_received")
    s.complete(case, "file_payment", {"filed": True}, user="ann")
    s.record("payment_triggered_and_filed", PAYMENT, case,
             "knhk run; case trigger payment_received; workitem complete")
    s.close()

    server = ThreadingHTTPServer(("127.0.0.1", 18765), Charge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s = Scenario()
        case = s.run(CHARGE, {"order": "o-1", "amount": 90})
        s.record("charge_waits_for_the_check", CHARGE, case, "knhk run, order o-1")
        s.complete(case, "check", {"checked": True}, user="ann")
        s.record("charge_call_succeeded", CHARGE, case,
                 "knhk run, order o-1; workitem complete check; the HTTP call answered 200")
        case = s.run(CHARGE, {"order": "bad-2", "amount": 90})
        s.complete(case, "check", {"checked": True}, user="ann", check=False)
        s.record("charge_call_failed_and_the_case_failed", CHARGE, case,
                 "knhk run, order bad-2; workitem complete check; the HTTP call answered 400")
        case = s.run(CHARGE_FF, {"order": "o-3"})
        s.record("charge_failure_flow_not_taken", CHARGE_FF, case,
                 "knhk run, order o-3; the HTTP call answered 200")
        case = s.run(CHARGE_FF, {"order": "bad-4"})
        s.record("charge_failure_flow_taken", CHARGE_FF, case,
                 "knhk run, order bad-4; the HTTP call answered 400")
        s.complete(case, "handle_failure", {"handled": "refunded"}, user="ann")
        s.record("charge_failure_handled", CHARGE_FF, case,
                 "knhk run, order bad-4; the HTTP call answered 400; workitem complete")
        # An incident retried: the second call, with a new idempotency key, is charged.
        case = s.run(CHARGE, {"order": "flaky-5", "amount": 90})
        s.complete(case, "check", {"checked": True}, user="ann", check=False)
        s.knhk("case", "retry", case)
        s.record("charge_call_failed_then_retried", CHARGE, case,
                 "knhk run, order flaky-5; workitem complete check; the HTTP call answered "
                 "400; case retry; the second call answered 200")
        s.close()
    finally:
        server.shutdown()

    # Incidents: a work item failed with no failure flow leaves the case failed until retried.
    s = Scenario()
    case = s.run(LOAN, {"applicant": "Flo", "amount": 25000})
    item = s.item(case, "underwriter_decision")
    s.knhk("workitem", "fail", item, "--user", "uma", "--reason", "documents missing",
           check=False)
    s.record("loan_work_item_failed_with_an_incident", LOAN, case,
             "knhk run, amount 25000; workitem fail by uma: documents missing (an incident)")
    s.knhk("case", "retry", case)
    s.record("loan_work_item_failed_then_retried", LOAN, case,
             "knhk run, amount 25000; workitem fail by uma; case retry: a new work item")
    s.close()

    s = Scenario()
    case = s.run(REVIEW, {"reviewed": False, "doc": "d-1"})
    s.record("review_timer_armed", REVIEW, case, "knhk run")
    s.complete(case, "review", {"reviewed": True}, user="rita")
    s.record("review_done_before_the_timer", REVIEW, case,
             "knhk run; workitem complete within the two seconds")
    case = s.run(REVIEW, {"reviewed": False, "doc": "d-2"})
    started = time.monotonic()
    s.knhk("worker", "--until-idle")
    if time.monotonic() - started < 1.5:
        sys.exit("the worker returned before the review timer could fire")
    s.record("review_timer_fired", REVIEW, case, "knhk run; knhk worker --until-idle")
    s.close()

    # An administrator distributes the work items YAWL leaves to run time.
    s = Scenario()
    (Path(s.dir) / "directory.json").write_text(json.dumps(DIRECTORY))
    case = s.run(LEAVE, {})
    s.record("leave_waits_in_the_admin_queue", LEAVE, case,
             "knhk run, the initial values; Submit offered to role admin")
    item = s.item(case, "Submit_3")
    s.knhk("workitem", "offer", item, "--role", "clerk", "--user", "ada")
    s.record("leave_reoffered_to_the_clerks", LEAVE, case,
             "knhk run; workitem offer --role clerk by the administrator ada")
    s.knhk("workitem", "claim", item, "--user", "bob")
    s.complete(case, "Submit_3", {}, user="bob")
    s.record("leave_reoffered_then_completed", LEAVE, case,
             "knhk run; workitem offer --role clerk by ada; claim, complete by the clerk bob")
    case = s.run(LEAVE, {"days": 10})
    item = s.item(case, "Submit_3")
    s.knhk("workitem", "allocate", item, "--to", "ann", "--user", "ada")
    s.record("leave_allocated_by_an_administrator", LEAVE, case,
             "knhk run, days 10; workitem allocate --to ann by the administrator ada")
    s.complete(case, "Submit_3", {}, user="ann")
    s.record("leave_allocated_then_submitted", LEAVE, case,
             "knhk run, days 10; workitem allocate --to ann by ada; complete by ann; "
             "the manager's review waits")
    s.close()

    # The firing bound fails a case whose automatic tasks loop for ever.
    s = Scenario()
    case = s.json("--max-firings", "50", "run", RUNAWAY, check=False)["case_id"]
    s.record("runaway_loop_failed_at_the_firing_bound", RUNAWAY, case,
             "knhk --max-firings 50 run; the loop of empty tasks A, B fails the case")
    s.close()

    # The inputs given from the command line: an instance added to a dynamic task, a task
    # completed early, case data set, a work item failed.
    s = Scenario()
    case = s.run(QUOTES, {"suppliers": ["acme", "globex"]})
    s.knhk("case", "add-instance", case, "Quote", "--item", '"initech"')
    s.record("quotes_instance_added", QUOTES, case,
             "knhk run, two suppliers; case add-instance Quote --item initech")
    s.knhk("case", "complete-task", case, "Quote")
    s.record("quotes_task_completed_early", QUOTES, case,
             "knhk run, two suppliers; case add-instance Quote; case complete-task Quote")
    case = s.run(QUOTES, {"suppliers": ["acme"]})
    s.knhk("case", "set-data", case, "--data", '{"budget": 900}')
    s.record("quotes_data_set", QUOTES, case,
             "knhk run, one supplier; case set-data budget 900")
    s.close()

    s = Scenario()
    case = s.run(LOAN, {"applicant": "Ed", "amount": 25000})
    item = s.item(case, "underwriter_decision")
    s.knhk("workitem", "claim", item, "--user", "uma")
    s.knhk("workitem", "fail", item, "--user", "uma", "--reason", "documents missing",
           check=False)
    s.record("loan_work_item_failed", LOAN, case,
             "knhk run, amount 25000; workitem claim, fail by uma: documents missing")
    s.close()


if __name__ == "__main__":
    scenarios()
