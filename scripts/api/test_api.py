"""make test-api: the HTTP contract. openapi.yaml is a valid OpenAPI document,
then Schemathesis fuzzes the running server (every default check: no 5xx,
documented status codes, content types, headers and bodies; valid input
accepted, invalid rejected; settings in schemathesis.toml) on SQLite and on
the throwaway PostgreSQL. Bounded: deterministic generation, FUZZ_EXAMPLES
(default 60) examples per operation.
"""

import os
import secrets
import subprocess
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from harness import ROOT, tail

pytestmark = pytest.mark.api


def test_openapi_document_is_valid():
    validate(read_from_filename(str(ROOT / "Sources/UserAPI/Resources/openapi.yaml"))[0])


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_schemathesis(database, request, tools, start_userapi, tmp_path):
    url = f"sqlite:{tmp_path}/fuzz.sqlite" if database == "sqlite" else request.getfixturevalue("postgres").fresh_database()
    token = "fuzz-" + secrets.token_hex(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "AUTH_", "HTTP_", "CONFIG_FILE", "ENV_FILE"))}
    server = start_userapi(f"fuzz-{database}", "--database-url", url,
                           env=env | {"AUTH_TOKENS": token, "LOG_ACCESS": "false", "LOG_FORMAT": "json"})
    run = subprocess.run([tools.schemathesis, "--config-file", str(Path(__file__).with_name("schemathesis.toml")), "run",
                          f"{server.url}/openapi.yaml", "-H", f"Authorization: Bearer {token}", "--max-examples",
                          os.environ.get("FUZZ_EXAMPLES", "60"), "--generation-deterministic", "--no-color",
                          # The feed's streams never end by design (the Swift feed tests cover them);
                          # the timeout turns any other hang into a failure.
                          "--exclude-path", "/users/events", "--exclude-path", "/users/watch",
                          "--request-timeout", "30",
                          # The user fields' patterns (no bidi controls, a letter or digit, the email's
                          # local part) reject most random strings; generation filters them, slowly.
                          "--suppress-health-check", "filter_too_much"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert server.process.poll() is None, "the server died during the run" + tail(server.log)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
