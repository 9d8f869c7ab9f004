"""The TOML writer (deploys/runtime/toml_text.py): what it writes reads back as the same
data, and no value or key can break out of its string."""

import pytest

from deploys.runtime.toml_text import dumps, literal, loads

HOSTILE = [
    'a"b',
    "back\\slash",
    "new\nline",
    "tab\tand\rreturn",
    "\x00\x01\x1f\x7f",
    '"\n[plugins]\nversion = 1\n"',
    "''' triple",
    "ünïcødé ✓",
    "; whoami",
    "$(whoami)",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_string_values_read_back_unchanged(value):
    data = {"key": value, "table": {"nested": value, "list": [value, value]}}
    assert loads(dumps(data)) == data


@pytest.mark.parametrize("key", HOSTILE + ["io.containerd.grpc.v1.cri", "http://10.0.0.5:5000"])
def test_hostile_keys_read_back_unchanged(key):
    data = {key: 1, "t": {key: {key: True}}}
    assert loads(dumps(data)) == data


def test_nested_tables_get_dotted_headers_with_quoted_dotted_keys():
    text = dumps({"version": 2, "plugins": {"io.containerd.grpc.v1.cri": {"a": {"b": False}}}})
    assert text.splitlines()[0] == "version = 2"
    assert '[plugins."io.containerd.grpc.v1.cri".a]' in text
    assert "b = false" in text


def test_scalars_come_before_sub_tables_and_empty_tables_are_written():
    data = {"t": {"sub": {"x": 1}, "after": "kept with its table"}, "empty": {}}
    text = dumps(data)
    assert text.index('after = "kept with its table"') < text.index("[t.sub]")
    assert "[empty]" in text
    assert loads(text) == data


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (False, "false"), (0, "0"), (-3, "-3"), ([], "[]"), (["a", 1], '["a", 1]')],
)
def test_literals(value, text):
    assert literal(value) == text


@pytest.mark.parametrize("value", [None, 1.5, {"a": 1}.items(), object()])
def test_values_without_a_toml_form_are_refused(value):
    with pytest.raises(TypeError):
        dumps({"key": value})


@pytest.mark.parametrize("key", ["", 1, None])
def test_keys_must_be_non_empty_strings(key):
    with pytest.raises(TypeError):
        dumps({key: 1})
