"""A workstation cannot damage the clinic database (issue 21), on the real
PostgreSQL server: migrations run as the owner; the workstations' role, granted
exactly as docs/deployment.md says, screens and audits but is refused a DROP, an
ALTER, a TRUNCATE and any UPDATE or DELETE of the audit log."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from eyescreen_desktop.core.records import Patient
from eyescreen_desktop.core.store import ClinicStore

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def documented_grants(owner: str, station: str) -> list[str]:
    """The statements of the deployment guide's grant block, for these role names."""
    blocks = re.findall(r"```sql\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    block = next(b for b in blocks if "ON ALL TABLES IN SCHEMA public TO eyescreen_station" in b)
    block = block.replace("eyescreen_station", station).replace("eyescreen_owner", owner)
    lines = [re.sub(r"--.*$", "", line) for line in block.splitlines() if not line.startswith("\\")]
    return [s.strip() for s in " ".join(lines).split(";") if s.strip()]


def test_the_workstation_role_may_write_rows_but_not_drop_alter_or_rewrite_the_audit_log(pg_server, tmp_path):
    import psycopg

    tag = uuid.uuid4().hex[:8]
    owner, station, name = f"owner_{tag}", f"station_{tag}", f"clinic_{tag}"
    server = f"host=127.0.0.1 port={pg_server.port} user={pg_server.user}"
    with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as su:
        su.execute(f"CREATE ROLE {owner} LOGIN")
        su.execute(f"CREATE ROLE {station} LOGIN")
        su.execute(f"CREATE DATABASE {name} OWNER {owner}")
    with psycopg.connect(f"{server} dbname={name}", autocommit=True) as su:
        su.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        su.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {owner}")
        su.execute(f"GRANT USAGE ON SCHEMA public TO {station}")
    url = f"postgresql://{{}}@127.0.0.1:{pg_server.port}/{name}"
    images = tmp_path / "images"
    with ClinicStore(url.format(owner), images):          # the schema, created by its owner
        pass
    with psycopg.connect(f"host=127.0.0.1 port={pg_server.port} user={owner} dbname={name}",
                         autocommit=True) as conn:
        for statement in documented_grants(owner, station):
            conn.execute(statement)
    with ClinicStore(url.format(station), images) as store:  # a workstation screens and audits
        store.upsert_patient(Patient("P1", "Ann"))
        assert store.verify_audit().ok
    refused = ["DROP TABLE patients", "ALTER TABLE patients ADD COLUMN x integer", "TRUNCATE audit_log",
               "UPDATE audit_log SET action = 'nothing happened'", "DELETE FROM audit_log"]
    with psycopg.connect(f"host=127.0.0.1 port={pg_server.port} user={station} dbname={name}") as conn:
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
