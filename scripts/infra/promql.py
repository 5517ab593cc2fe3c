"""Just enough PromQL lexing for the monitoring checks.

Not a parser: it walks an expression, skipping string literals, label
matchers ({...}) and range/subquery brackets ([...]), and reports

  * the metric names the expression selects (identifiers that are not
    functions, aggregations, keywords or label names of a grouping clause), and
  * a copy where every filtering comparison gets the `bool` modifier, so an
    alert expression returns a 0/1 series instead of nothing while all is
    well. The live test uses that copy: "the expression returns data" then
    means its selectors, joins and arithmetic work on real metrics, whether
    or not the alert would fire right now.
"""

from __future__ import annotations

import re

AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"[0-9.][0-9A-Za-z_.+]*")


def _skip_string(expr: str, i: int) -> int:
    quote = expr[i]
    i += 1
    while i < len(expr):
        if expr[i] == "\\" and quote != "`":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        i += 1
    raise ValueError(f"unterminated string in: {expr}")


def _skip_group(expr: str, i: int, close: str) -> int:
    """Index just past the bracket that closes the one at i (strings inside are skipped)."""
    i += 1
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
            continue
        if c == close:
            return i + 1
        i += 1
    raise ValueError(f"unbalanced {close!r} in: {expr}")


def _next_nonspace(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects (recording-rule names included)."""
    names: set[str] = set()
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
        elif c == "{":
            i = _skip_group(expr, i, "}")
        elif c == "[":
            i = _skip_group(expr, i, "]")
        elif c == "#":
            nl = expr.find("\n", i)
            i = len(expr) if nl < 0 else nl
        elif c.isdigit() or (c == "." and i + 1 < len(expr) and expr[i + 1].isdigit()):
            i = _NUMBER.match(expr, i).end()
        elif _IDENT.match(expr, i):
            m = _IDENT.match(expr, i)
            word = m.group(0)
            i = m.end()
            j = _next_nonspace(expr, i)
            if word in GROUPING:
                if j < len(expr) and expr[j] == "(":
                    i = _skip_group(expr, j, ")")
                continue
            if word in AGGREGATIONS or word.lower() in KEYWORDS:
                continue
            if j < len(expr) and expr[j] == "(":
                continue  # a function call
            names.add(word)
        else:
            i += 1
    return names


def with_bool(expr: str) -> str:
    """The expression with `bool` after each comparison operator that lacks it."""
    out: list[str] = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            j = _skip_string(expr, i)
        elif c == "{":
            j = _skip_group(expr, i, "}")
        elif c == "[":
            j = _skip_group(expr, i, "]")
        else:
            op = next((o for o in COMPARISONS if expr.startswith(o, i)), None)
            if op is None:
                out.append(c)
                i += 1
                continue
            j = i + len(op)
            out.append(op)
            k = _next_nonspace(expr, j)
            if not expr.startswith("bool", k) or _IDENT.match(expr, k).group(0) != "bool":
                out.append(" bool")
            i = j
            continue
        out.append(expr[i:j])
        i = j
    return "".join(out)
