#!/usr/bin/env python3
"""Keeps README.md true where it can be checked mechanically.

- The configuration table between the config-table markers must equal
  `userapi config --format markdown` (the option table in the code).
- The first code block must hold the run command and the test command that
  CI runs (.ci/run calls `make test`).
- Every make target the README mentions must exist.

`--fix` rewrites the configuration table in place instead of failing.
"""
import os
import re
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
readme_path = os.path.join(root, "README.md")
binary = os.environ.get("USERAPI_BIN", os.path.join(root, ".build/debug/userapi"))

readme = open(readme_path, encoding="utf-8").read()
problems = []

env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
generated = subprocess.run(
    [binary, "config", "--format", "markdown"], env=env, cwd="/", check=True, capture_output=True, text=True
).stdout
pattern = re.compile(r"(<!-- config-table:begin[^\n]*-->\n)(.*?)(<!-- config-table:end -->)", re.S)
match = pattern.search(readme)
if not match:
    problems.append("README.md has no config-table markers")
elif match.group(2) != generated:
    if "--fix" in sys.argv:
        readme = readme[: match.start(2)] + generated + readme[match.end(2):]
        open(readme_path, "w", encoding="utf-8").write(readme)
        print("check-readme: configuration table updated")
    else:
        problems.append("the configuration table differs from `userapi config --format markdown` (run scripts/docs/check-readme.py --fix)")

first_block = re.search(r"```sh\n(.*?)```", readme, re.S)
if not first_block or "swift run userapi" not in first_block.group(1) or "make test" not in first_block.group(1):
    problems.append("the first code block must give the run command (swift run userapi) and the test command (make test)")
ci = open(os.path.join(root, ".ci/run"), encoding="utf-8").read()
if not re.search(r"^\s*make\b[^\n]*\btest\b", ci, re.M):
    problems.append(".ci/run does not call `make test`, the README's test command")

targets = subprocess.run(["make", "-qp"], cwd=root, capture_output=True, text=True).stdout
defined = set(re.findall(r"^([A-Za-z0-9_.-]+):", targets, re.M))
for target in sorted(set(re.findall(r"`make ([a-z0-9-]+)", readme))):
    if target not in defined:
        problems.append(f"README mentions `make {target}`, which does not exist")

if problems:
    for p in problems:
        print(f"check-readme: {p}", file=sys.stderr)
    sys.exit(1)
print("check-readme: README.md is consistent")
