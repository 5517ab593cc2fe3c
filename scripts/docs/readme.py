"""The configuration table in docs/configuration.md is generated from the code:
`make readme` runs this to rewrite it from `userapi config --format markdown`;
test_readme.py checks the table, README.md's commands and the make targets
the documentation names, test_links.py its links.
"""
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
TABLE = re.compile(r"(<!-- config-table:begin[^\n]*-->\n)(.*?)(<!-- config-table:end -->)", re.S)


def config_table(binary: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run([str(binary), "config", "--format", "markdown"], env=env, cwd="/", check=True,
                          capture_output=True, text=True).stdout


if __name__ == "__main__":
    text = CONFIGURATION.read_text(encoding="utf-8")
    match = TABLE.search(text)
    if not match:
        raise SystemExit("readme: docs/configuration.md has no config-table markers")
    table = config_table(ROOT / os.environ.get("USERAPI_BIN", ".build/debug/userapi"))
    CONFIGURATION.write_text(text[: match.start(2)] + table + text[match.end(2):], encoding="utf-8")
    print("readme: configuration table in docs/configuration.md updated")
