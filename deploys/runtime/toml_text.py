"""TOML text: the runtime's configuration files (config.toml, hosts.toml) written from plain
data, and TOML read back (`containerd config dump`).

Tables become `[dotted.headers]` (keys that are not bare words are quoted), values are
strings, booleans, integers or lists of them. Every string is written as a basic string
with `"`, `\\` and all control characters escaped, so no value can end its string, add a
key or start a table.
"""

from __future__ import annotations

import re

try:
    from tomllib import TOMLDecodeError, loads
except ModuleNotFoundError:  # Python 3.10
    from tomli import TOMLDecodeError, loads

__all__ = ["TOMLDecodeError", "dumps", "literal", "loads"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def dumps(data: dict) -> str:
    """The TOML document of `data`: scalars of a table first, then its sub-tables in order."""
    lines: list[str] = []
    _table(lines, (), data)
    return "\n".join(lines).strip("\n") + "\n"


def _table(lines: list[str], path: tuple[str, ...], table: dict) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    indent = "  " * max(len(path) - 1, 0)
    if path and (scalars or not tables):
        lines += ["", f"{indent}[{'.'.join(_key(part) for part in path)}]"]
    lines += [f"{indent}{'  ' if path else ''}{_key(k)} = {literal(v)}" for k, v in scalars]
    for key, sub in tables:
        _table(lines, (*path, key), sub)


def _key(key) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"TOML key {key!r} is not a non-empty string")
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def literal(value) -> str:
    """One TOML value: a string, boolean, integer or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__} {value!r}")


def _string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
