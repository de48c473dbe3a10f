"""The clinic database's tables and the migrations that bring an older file up to date."""

from __future__ import annotations


_SCHEMA_V1 = """
CREATE TABLE patients (
    patient_id      TEXT PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    birth_date      TEXT,
    sex             TEXT NOT NULL DEFAULT '',
    diabetes_type   TEXT NOT NULL DEFAULT '',
    diabetes_years  INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE TABLE encounters (
    encounter_id    TEXT PRIMARY KEY,
    patient_id      TEXT NOT NULL REFERENCES patients(patient_id) ON UPDATE CASCADE,
    started_at      TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('batch', 'desk')),
    batch_key       TEXT,
    created_by      TEXT NOT NULL
);
CREATE INDEX encounters_patient ON encounters(patient_id, started_at);
CREATE UNIQUE INDEX encounters_batch_patient ON encounters(batch_key, patient_id)
    WHERE batch_key IS NOT NULL;
CREATE TABLE images (
    image_id        INTEGER PRIMARY KEY,
    sha256          TEXT UNIQUE,            -- NULL: the file could not be read at all
    original_path   TEXT NOT NULL,          -- where it was first seen
    stored_name     TEXT,                   -- copy under the image store, NULL when none
    size_bytes      INTEGER,
    added_at        TEXT NOT NULL
);
CREATE TABLE encounter_images (
    encounter_image_id INTEGER PRIMARY KEY,
    encounter_id    TEXT NOT NULL REFERENCES encounters(encounter_id) ON DELETE CASCADE,
    image_id        INTEGER NOT NULL REFERENCES images(image_id),
    eye             TEXT NOT NULL CHECK (eye IN ('L', 'R', '?')),
    original_path   TEXT NOT NULL,
    added_at        TEXT NOT NULL,
    UNIQUE (encounter_id, image_id)
);
CREATE TABLE results (
    result_id       INTEGER PRIMARY KEY,
    encounter_image_id INTEGER NOT NULL REFERENCES encounter_images(encounter_image_id) ON DELETE CASCADE,
    encounter_id    TEXT NOT NULL REFERENCES encounters(encounter_id) ON DELETE CASCADE,
    image_id        INTEGER NOT NULL REFERENCES images(image_id),
    model_name      TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    model_sha       TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    op_name         TEXT,
    operating_point TEXT,                   -- JSON thresholds
    status          TEXT NOT NULL CHECK (status IN ('ok', 'ungradable', 'not_fundus', 'error')),
    grade           INTEGER CHECK (grade BETWEEN 0 AND 4),
    probabilities   TEXT,                   -- JSON list of ICDR grade 0-4 probabilities
    p_referable     REAL,
    p_urgent        REAL,
    p_maculopathy   REAL,
    queue           TEXT NOT NULL CHECK (queue IN ('urgent', 'routine', 'review', 'annual')),
    code            TEXT NOT NULL DEFAULT '',
    finding         TEXT NOT NULL DEFAULT '',
    message         TEXT NOT NULL DEFAULT '',
    quality_reasons TEXT NOT NULL DEFAULT '[]',
    quality_advice  TEXT,
    quality_metrics TEXT,                   -- JSON; NULL when the gate never ran (unreadable file)
    width           INTEGER,
    height          INTEGER,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    CHECK (status = 'ok' OR queue = 'review'),
    UNIQUE (encounter_image_id, model_sha, protocol)
);
CREATE INDEX results_cache ON results(image_id, model_sha, protocol);
CREATE INDEX results_encounter ON results(encounter_id);
CREATE TABLE queue_state (
    encounter_id    TEXT PRIMARY KEY REFERENCES encounters(encounter_id) ON DELETE CASCADE,
    queue           TEXT NOT NULL CHECK (queue IN ('urgent', 'routine', 'review', 'annual')),
    due_date        TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'referred', 'closed')),
    slip_printed_at TEXT,
    override_queue  TEXT CHECK (override_queue IN ('urgent', 'routine', 'review', 'annual')),
    override_reason TEXT NOT NULL DEFAULT '',
    override_due_date TEXT,
    updated_at      TEXT NOT NULL
);
CREATE INDEX queue_state_due ON queue_state(state, due_date);
CREATE TABLE batches (
    batch_key       TEXT PRIMARY KEY,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    protocol        TEXT NOT NULL,
    model_sha       TEXT NOT NULL,
    inputs          TEXT NOT NULL           -- JSON list of resolved input paths
);
CREATE TABLE batch_files (
    batch_key       TEXT NOT NULL REFERENCES batches(batch_key),
    file            TEXT NOT NULL,          -- as written in results.csv
    encounter_id    TEXT NOT NULL REFERENCES encounters(encounter_id),
    result_id       INTEGER NOT NULL REFERENCES results(result_id),
    PRIMARY KEY (batch_key, file)
);
CREATE TABLE audit_log (
    audit_id        INTEGER PRIMARY KEY,
    at              TEXT NOT NULL,
    user            TEXT NOT NULL,
    action          TEXT NOT NULL,
    entity          TEXT NOT NULL,          -- "patient:P001", "encounter:<id>", "result:12" ...
    details         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_entity ON audit_log(entity, audit_id);
"""

# Version 2: the heat map of a graded photograph (a small 8-bit PNG), so a slip
# printed from the queues days later shows where the network looked.
_SCHEMA_V2 = """
ALTER TABLE results ADD COLUMN heatmap BLOB;
"""

# Version 3 (a screening day made safe, issue 12):
# * patients.search_text: ID, name and birth date folded (NFKD, accents dropped,
#   case-folded) by the connection's eyescreen_search_text() function, so "nunez"
#   finds "Zoë Ñúñez" in SQL instead of a Python scan of every patient;
# * missing_eyes: why an eye was not photographed, which makes a one-eyed visit complete;
# * queue_state.slip_saved_at (the document saved as PDF counts as issued) and
#   referred_without_slip (marked referred before any slip was printed or saved);
# * watched_folders: since when a camera folder is watched, so photographs that
#   arrived while the app was closed are screened at the next start.
_SCHEMA_V3 = """
ALTER TABLE patients ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE patients SET search_text = eyescreen_search_text(patient_id, name, birth_date);
CREATE TABLE missing_eyes (
    encounter_id    TEXT NOT NULL REFERENCES encounters(encounter_id) ON DELETE CASCADE,
    eye             TEXT NOT NULL CHECK (eye IN ('L', 'R')),
    reason          TEXT NOT NULL,
    note            TEXT NOT NULL DEFAULT '',
    recorded_at     TEXT NOT NULL,
    recorded_by     TEXT NOT NULL,
    PRIMARY KEY (encounter_id, eye)
);
ALTER TABLE queue_state ADD COLUMN slip_saved_at TEXT;
ALTER TABLE queue_state ADD COLUMN referred_without_slip INTEGER NOT NULL DEFAULT 0;
CREATE TABLE watched_folders (
    folder          TEXT PRIMARY KEY,
    since           TEXT NOT NULL
);
"""

# Version 4 (the external-eye check, issue 11): what kind of picture a result is about
# (fundus / external_eye / other, from the gate) and, for an external-eye photograph,
# the probability that an eye check-up is needed (such a result never has a grade).
_SCHEMA_V4 = """
ALTER TABLE results ADD COLUMN modality TEXT NOT NULL DEFAULT 'fundus';
ALTER TABLE results ADD COLUMN p_checkup REAL CHECK (p_checkup IS NULL OR (p_checkup >= 0 AND p_checkup <= 1));
"""

# Version 5 (issue 9, the learned gate): the gate's "name version" that judged
# the photograph ('' = the hand-made rules only, as every result before it), so a
# result row says which gate let the photograph through, and a cached result of
# another gate is judged again.
_SCHEMA_V5 = """
ALTER TABLE results ADD COLUMN gate TEXT NOT NULL DEFAULT '';
"""

# Version 6: queue views and start-up that do not grow with the database (issue 12, item 12):
# * queue_state_view: the index the queue views count and page by (effective
#   queue, state, effective due date), so the window's counts and first pages read
#   the index instead of every encounter (IF NOT EXISTS: an older window created it
#   on the fly);
# * store_meta: small named values the store keeps, e.g. the highest result ID
#   already checked for a queue entry, so the repair at open reads only newer results.
_SCHEMA_QUEUE_VIEWS = """
CREATE INDEX IF NOT EXISTS queue_state_view ON queue_state(
    COALESCE(override_queue, queue), state, COALESCE(override_due_date, due_date));
CREATE TABLE store_meta (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL
);
"""

# Each entry brings the schema from version i to i + 1. Append, never edit. The last
# state is Alembic's revision 0001 (migrations/versions): later changes are Alembic revisions.
MIGRATIONS: list[str] = [_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4, _SCHEMA_V5, _SCHEMA_QUEUE_VIEWS]
SCHEMA_VERSION = len(MIGRATIONS)
