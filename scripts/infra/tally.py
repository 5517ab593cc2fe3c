"""PASS/FAIL lines and their count, for the infrastructure check scripts."""
from __future__ import annotations


class Tally:
    def __init__(self, prefix: str = "") -> None:
        self.passed = 0
        self.failed = 0
        self.prefix = prefix  # negative controls indent their (expected) failures

    def check(self, ok: bool, name: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"{self.prefix}PASS {name}")
        else:
            self.failed += 1
            # The tail of a long detail (a command's output) is where the error is.
            print(f"{self.prefix}FAIL {name}{': ' + detail[-1500:] if detail else ''}")
        return ok

    def finish(self) -> int:
        """Prints the last line ("N passed, N failed") and returns the exit code."""
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
