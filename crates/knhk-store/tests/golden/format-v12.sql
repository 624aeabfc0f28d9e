-- knhk store, format 12: written by tests/it/golden.rs (KNHK_WRITE_GOLDEN=1), do not edit.
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
, in_flight INTEGER NOT NULL DEFAULT 1, owner INTEGER);
INSERT INTO "cases" VALUES('00000000-0000-0000-0000-00000000c001','00000000-0000-0000-0000-00000000f001','running','{"label":"case 1","n":1}','{"0":{"approve":1}}',6,1700000000100,1700000000200,1,NULL);
INSERT INTO "cases" VALUES('00000000-0000-0000-0000-00000000c002','00000000-0000-0000-0000-00000000f001','cancelled','{"label":"case 2","n":2}','{}',3,1700000000300,1700000000300,1,NULL);
CREATE TABLE events (
    case_id TEXT NOT NULL REFERENCES cases (id),
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL, leaf INTEGER,
    PRIMARY KEY (case_id, seq)
) WITHOUT ROWID;
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',1,1700000100001,'case_created','{"type":"case_created","workflow":"order","data":{"amount":120,"customer":"ACME"}}',0);
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',2,1700000100002,'case_state_changed','{"type":"case_state_changed","from":"created","to":"running"}',1);
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',3,1700000100003,'task_enabled','{"type":"task_enabled","task":{"net_instance":0,"task":"approve"}}',2);
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',4,1700000100004,'task_started','{"type":"task_started","task":{"net_instance":0,"task":"approve"},"instances":[{"amount":120}]}',3);
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',5,1700000100005,'work_item_offered','{"type":"work_item_offered","item":"00000000-0000-0000-0000-00000000a001","task":{"net_instance":0,"task":"approve"},"instance":0,"input":{"amount":120}}',4);
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c001',6,1700000100006,'timer_armed','{"type":"timer_armed","timer":"00000000-0000-0000-0000-00000000b001","task":{"net_instance":0,"task":"approve"},"fires_at":1700003600000}',5);
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c002',1,1700000100001,'case_created','{"type":"case_created","workflow":"order","data":{}}',6);
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c002',2,1700000100002,'case_state_changed','{"type":"case_state_changed","from":"created","to":"cancelled","reason":"customer withdrew"}',7);
INSERT INTO "events" VALUES('00000000-0000-0000-0000-00000000c002',3,1700000100003,'tokens_removed','{"type":"tokens_removed","net_instance":0,"condition":"start","count":1}',8);
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY NOT NULL,
    response TEXT NOT NULL,
    at INTEGER NOT NULL
);
INSERT INTO "idempotency" VALUES('create-order-1','{"body":{"key":"create-order-1"},"status":201}',1700000000100);
CREATE TABLE lockchain_checkpoints (
    size INTEGER PRIMARY KEY NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    at INTEGER NOT NULL
);
INSERT INTO "lockchain_checkpoints" VALUES(9,X'1457B72A630F261B1199718AC7DB454685051413901EE78C85561DE6033FD868','knhk.example/golden
9
root

— golden sig
',1700000000500);
CREATE TABLE "lockchain_tiles" (
    at INTEGER PRIMARY KEY NOT NULL,
    hashes BLOB NOT NULL,
    leaves BLOB,
    runs BLOB
);
INSERT INTO "lockchain_tiles" VALUES(504403158265495552,X'B7319A243D49003B8A9ACCA32BE0CF80FF41BBF9A6353C866ED799ABEF9ECC41F13162EA4852E1D94DCCC95C5238BCB7257FEFD7C9CFDE7BFDDCBB83EB6EABEF2BE8E6A5DC190BDE51CB9267A9000D41DCDEA0FABA9DEDCF17504FC03D8E1F568962B9500925EEA44645BC63F06408477B3206965D86381A6276CE172827BCADE9C0A4035AAFD9C123784D779846C97E63B5F23A868142460A83C8B4FCF02AC224E520B8C29C358EA7037372AED3169E7D371A4971DE1264B45F3F5CD113FEA2',NULL,X'0000000000000000000000000000C001000000000000000100000006');
INSERT INTO "lockchain_tiles" VALUES(504403158265495558,X'75408E9358DDCD75C4425DC047029576787604F3B30A3B162FC5839AEF9AC2A5C2D603392A9F3FA6608058F350E64966D6EFE76E6AB11BDC398760A532CF8F4EC3D4A8DE0A5A000E05A025462B0F3C7416738F9B282C97F5E35EDEC7D3312DF3',NULL,X'0000000000000000000000000000C002000000000000000100000003');
CREATE TABLE nodes (
    fence INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO "nodes" VALUES(1,'golden-host/42',1700000000300,1700003700000);
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
INSERT INTO "sqlite_sequence" VALUES('nodes',1);
CREATE TABLE timers (
    id TEXT PRIMARY KEY NOT NULL,
    case_id TEXT NOT NULL,
    fires_at INTEGER NOT NULL
, claimed_by INTEGER, claimed_until INTEGER);
INSERT INTO "timers" VALUES('00000000-0000-0000-0000-00000000b001','00000000-0000-0000-0000-00000000c001',1700003600000,1,1700003610000);
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
CREATE INDEX cases_by_owner ON cases (owner, created_at, id) WHERE in_flight = 1;
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
PRAGMA user_version = 12;
COMMIT;
