"""TLS to the clinic's server with ``sslmode=verify-full`` (issue 21): a PostgreSQL
server of its own with a certificate signed by a CA the test makes; the store
connects encrypted when it trusts that CA and is refused when it trusts another
(or when the name it dials is not the certificate's)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from eyescreen_desktop.core.store import ClinicStore, StoreError


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> Path:
    """A CA (key + self-signed certificate) named ``name``; returns its certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=folder)
    return folder / f"{name}.crt"


def make_server_cert(folder: Path, ca: str) -> tuple[Path, Path]:
    """A server key and certificate for ``localhost`` signed by CA ``ca``."""
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr", cwd=folder)
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=folder)
    return folder / "server.crt", folder / "server.key"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A PostgreSQL server of its own that speaks TLS with a certificate of the test's CA."""
    from tests.pg_server import PostgresServer, find_bin

    bin_dir = find_bin()
    if bin_dir is None or shutil.which("openssl") is None:
        pytest.skip("PostgreSQL binaries or openssl not found")
    certs = tmp_path_factory.mktemp("certs")
    ca = make_ca(certs, "clinic-ca")
    other_ca = make_ca(certs, "someone-else")
    server = PostgresServer(bin_dir)
    cert, key = make_server_cert(certs, "clinic-ca")
    for source in (cert, key):   # the server reads them as its own user, the key private
        target = server.root / source.name
        shutil.copy(source, target)
        if server._as:
            os.chown(target, server._as["user"], server._as["group"])
        os.chmod(target, 0o600)
    server.options = (f"-c ssl=on -c ssl_cert_file={server.root / 'server.crt'} "
                      f"-c ssl_key_file={server.root / 'server.key'}")
    server.start()
    yield server, ca, other_ca
    server.cleanup()


def test_the_store_connects_with_verify_full_and_the_connection_is_encrypted(tls_server, tmp_path):
    server, ca, _other = tls_server
    name = server.new_database().rsplit("/", 1)[1]
    url = (f"postgresql://{server.user}@localhost:{server.port}/{name}"
           f"?sslmode=verify-full&sslrootcert={ca}")
    with ClinicStore(url, tmp_path / "images") as store:
        assert store._query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[0][0] is True
        assert store.verify_audit().ok


def test_a_server_whose_certificate_another_ca_signed_is_refused(tls_server, tmp_path):
    server, _ca, other_ca = tls_server
    name = server.new_database().rsplit("/", 1)[1]
    url = (f"postgresql://{server.user}@localhost:{server.port}/{name}"
           f"?sslmode=verify-full&sslrootcert={other_ca}")
    with pytest.raises(StoreError, match="certificate verify failed|check that the server runs"):
        ClinicStore(url, tmp_path / "images")


def test_a_name_that_is_not_the_certificates_is_refused(tls_server, tmp_path):
    server, ca, _other = tls_server
    name = server.new_database().rsplit("/", 1)[1]
    url = (f"postgresql://{server.user}@127.0.0.1:{server.port}/{name}"
           f"?sslmode=verify-full&sslrootcert={ca}")
    with pytest.raises(StoreError):
        ClinicStore(url, tmp_path / "images")
