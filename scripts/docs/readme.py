"""README.md's configuration table is generated from the code: `make readme`
runs this to rewrite it from `userapi config --format markdown`;
test_readme.py checks the table, the commands and the make targets.
"""
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TABLE = re.compile(r"(<!-- config-table:begin[^\n]*-->\n)(.*?)(<!-- config-table:end -->)", re.S)


def config_table(binary: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run([str(binary), "config", "--format", "markdown"], env=env, cwd="/", check=True,
                          capture_output=True, text=True).stdout


if __name__ == "__main__":
    text = README.read_text(encoding="utf-8")
    match = TABLE.search(text)
    if not match:
        raise SystemExit("readme: README.md has no config-table markers")
    table = config_table(ROOT / os.environ.get("USERAPI_BIN", ".build/debug/userapi"))
    README.write_text(text[: match.start(2)] + table + text[match.end(2):], encoding="utf-8")
    print("readme: configuration table updated")
