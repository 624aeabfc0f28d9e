-- knhk store, format 9: written by tests/it/golden.rs (KNHK_WRITE_GOLDEN=1), do not edit.
BEGIN TRANSACTION;
CREATE TABLE cases (
    id TEXT PRIMARY KEY NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    data TEXT NOT NULL,
    marking TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
, in_flight INTEGER NOT NULL DEFAULT 1);
INSERT INTO "cases" VALUES('00000000-0000-0000-0000-00000000c001','00000000-0000-0000-0000-00000000f001','running','{"label":"case 1","n":1}','{"0":{"approve":1}}',6,1700000000100,1700000000200,1);
INSERT INTO "cases" VALUES('00000000-0000-0000-0000-00000000c002','00000000-0000-0000-0000-00000000f001','cancelled','{"label":"case 2","n":2}','{}',3,1700000000300,1700000000300,1);
CREATE TABLE events (
    case_id TEXT NOT NULL REFERENCES cases (id),
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
) WITHOUT ROWID;
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',1,1700000100001,'case_created','{"type":"case_created","workflow":"order","data":{"amount":120,"customer":"ACME"}}');
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',2,1700000100002,'case_state_changed','{"type":"case_state_changed","from":"created","to":"running"}');
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',3,1700000100003,'task_enabled','{"type":"task_enabled","task":{"net_instance":0,"task":"approve"}}');
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',4,1700000100004,'task_started','{"type":"task_started","task":{"net_instance":0,"task":"approve"},"instances":[{"amount":120}]}');
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',5,1700000100005,'work_item_offered','{"type":"work_item_offered","item":"00000000-0000-0000-0000-00000000a001","task":{"net_instance":0,"task":"approve"},"instance":0,"input":{"amount":120}}');
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',6,1700000100006,'timer_armed','{"type":"timer_armed","timer":"00000000-0000-0000-0000-00000000b001","task":{"net_instance":0,"task":"approve"},"fires_at":1700003600000}');
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c002',1,1700000100001,'case_created','{"type":"case_created","workflow":"order","data":{}}');
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c002',2,1700000100002,'case_state_changed','{"type":"case_state_changed","from":"created","to":"cancelled","reason":"customer withdrew"}');
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c002',3,1700000100003,'tokens_removed','{"type":"tokens_removed","net_instance":0,"condition":"start","count":1}');
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY NOT NULL,
    response TEXT NOT NULL,
    at INTEGER NOT NULL
);
INSERT INTO "idempotency" VALUES('create-order-1','{"body":{"key":"create-order-1"},"status":201}',1700000000100);
CREATE TABLE quarantine (
    case_id TEXT PRIMARY KEY NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO "quarantine" VALUES('00000000-0000-0000-0000-00000000c002','stored history of case 2 does not replay',1700000000400);
CREATE TABLE sequences (
    name TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO "sequences" VALUES('round_robin/clerk',2);
CREATE TABLE snapshots (
    case_id TEXT PRIMARY KEY NOT NULL REFERENCES cases (id),
    seq INTEGER NOT NULL,
    format INTEGER NOT NULL,
    state TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO "snapshots" VALUES('00000000-0000-0000-0000-00000000c001',6,1,'{"status":"running","data":{"amount":120,"customer":"ACME"}}');
CREATE TABLE timers (
    id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL,
    fires_at INTEGER NOT NULL
);
INSERT INTO "timers" VALUES('00000000-0000-0000-0000-00000000b001','00000000-0000-0000-0000-00000000c001',1700003600000);
CREATE TABLE work_item_roles (
    role TEXT NOT NULL,
    offered_at INTEGER NOT NULL,
    item TEXT NOT NULL,
    PRIMARY KEY (role, offered_at, item)
) WITHOUT ROWID;
INSERT INTO "work_item_roles" VALUES('finance',1700000000150,'00000000-0000-0000-0000-00000000a001');
INSERT INTO "work_item_roles" VALUES('manager',1700000000150,'00000000-0000-0000-0000-00000000a001');
CREATE TABLE work_items (
    id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL,
    task TEXT NOT NULL,
    net_instance INTEGER NOT NULL,
    instance INTEGER NOT NULL,
    roles TEXT NOT NULL,
    allocation TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    input TEXT NOT NULL,
    offered_at INTEGER NOT NULL
);
INSERT INTO "work_items" VALUES('00000000-0000-0000-0000-00000000a001','00000000-0000-0000-0000-00000000c001','task1',0,1,'["manager","finance"]','offer','offered',NULL,'{"n":1}',1700000000150);
CREATE TABLE workflows (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    format TEXT NOT NULL,
    source TEXT NOT NULL,
    spec TEXT NOT NULL,
    registered_at INTEGER NOT NULL
, uri TEXT NOT NULL DEFAULT '');
INSERT INTO "workflows" VALUES('00000000-0000-0000-0000-00000000f001','order',1,'turtle','@prefix yawl: <http://example.org/yawl#> .
# order v1
','{"name":"order","nets":[{"id":"root","tasks":["a","b"]}],"v":1}',1700000000001,'urn:knhk:workflow:order');
CREATE INDEX cases_by_created ON cases (created_at, id);
CREATE INDEX cases_by_last_group ON cases (substr(id, 25));
CREATE INDEX cases_by_status ON cases (status, created_at, id);
CREATE INDEX cases_by_workflow ON cases (workflow, created_at, id);
CREATE INDEX cases_in_flight ON cases (status, created_at, id) WHERE in_flight = 1;
CREATE INDEX timers_by_fires_at ON timers (fires_at, id);
CREATE INDEX work_items_by_case ON work_items (case_id);
CREATE INDEX work_items_by_last_group ON work_items (substr(id, 25));
CREATE INDEX work_items_by_offered ON work_items (offered_at, id);
CREATE INDEX work_items_by_owner ON work_items (owner, offered_at, id);
CREATE INDEX work_items_by_state ON work_items (state, offered_at, id);
CREATE INDEX workflows_by_name ON workflows (name, version);
CREATE UNIQUE INDEX workflows_by_uri ON workflows (uri, version);
PRAGMA user_version = 9;
COMMIT;
