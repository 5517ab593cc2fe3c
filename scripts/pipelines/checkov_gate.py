"""Runs checkov (github_actions + gitlab_ci) on CI files and reports any failed check
and any file checkov did not actually check (test_pipelines.py).

Why a wrapper: checkov silently drops a workflow that its bundled GitHub workflow schema
rejects, and reports "0 failed" for it. checkov 3.3.30's schema predates the `attestations`
job permission (needed by actions/attest-build-provenance), so release.yml and deploy.yml
would be skipped unseen. This wrapper
  * gives checkov a copy of each file in which `attestations:` permission lines are turned
    into comments (line numbers unchanged, nothing else touched), and
  * fails unless every file shows up in checkov's results with at least one check run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

# Permission keys GitHub accepts that checkov's bundled schema does not know yet.
UNKNOWN_TO_CHECKOV = re.compile(r"^(\s+)(attestations:\s*(read|write|none)\b.*)$")


def gate(checkov: str, root: Path, files: list[Path]) -> tuple[bool, str]:
    """(passed, report): no failed check and every file checked."""
    root = root.resolve()
    with tempfile.TemporaryDirectory(prefix="checkov-gate.") as tmp:
        copies = {}
        for f in files:
            rel = f.resolve().relative_to(root)
            dest = Path(tmp) / rel  # keeps .github/workflows/, which checkov keys on
            dest.parent.mkdir(parents=True, exist_ok=True)
            lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
            dest.write_text("".join(UNKNOWN_TO_CHECKOV.sub(r"\1# \2", ln) for ln in lines), encoding="utf-8")
            copies["/" + str(rel)] = str(rel)
        cmd = [checkov, "--skip-download", "--framework", "github_actions", "gitlab_ci", "--output", "json"]
        for rel in copies.values():
            cmd += ["-f", rel]
        env = dict(os.environ, BC_SKIP_MAPPING="TRUE")
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env, check=False)
    try:
        reports = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return False, f"checkov: no JSON report (checkov failed to run)\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    reports = reports if isinstance(reports, list) else [reports]
    checked: dict[str, int] = {}
    lines = []
    for report in reports:
        results = report.get("results") or {}
        for key in ("passed_checks", "failed_checks"):
            for c in results.get(key, []):
                checked[c["file_path"]] = checked.get(c["file_path"], 0) + 1
                if key == "failed_checks":
                    line = (c.get("file_line_range") or ["?"])[0]
                    lines.append(f"checkov: {c['check_id']} {c['check_name']}: {c['file_path'].lstrip('/')}:{line}")
    failed = len(lines)
    lines += [f"checkov: {rel} was not checked (checkov could not parse it or rejected its schema)"
              for key, rel in copies.items() if not checked.get(key)]
    lines.append("checkov: " + ", ".join(f"{rel}: {checked.get(key, 0)} checks" for key, rel in copies.items()) + f"; {failed} failed")
    return len(lines) == 1, "\n".join(lines)
