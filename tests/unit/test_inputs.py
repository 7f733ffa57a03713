"""Flow inputs: declaration models and coercion of given values, one block per Kestra input type."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from app.model.inputs import (
    ArrayInput,
    FileInput,
    InputDef,
    InputError,
    SelectInput,
    StringInput,
    parse_input,
    resolve_inputs,
)
from app.store.storage import LocalStorage, execution_uri


def resolve_one(decl: dict[str, Any], value: Any = None, **kwargs: Any) -> Any:
    """Resolve a single input declared as `decl` (id 'x' unless given) with `value` given."""
    decl = {"id": "x", **decl}
    given = {} if value is None else {decl["id"]: value}
    return resolve_inputs([parse_input(decl)], given, **kwargs)[decl["id"]]


def bad(decl: dict[str, Any], value: Any, match: str, **kwargs: Any) -> InputError:
    """Assert `value` is rejected with a message naming the input and matching `match`."""
    with pytest.raises(InputError, match=match) as info:
        resolve_one({"id": "my_input", **decl}, value, **kwargs)
    assert info.value.input_id == "my_input"
    assert "'my_input'" in str(info.value)
    return info.value


# -- declarations --


def test_parse_picks_model_by_type() -> None:
    assert isinstance(parse_input({"id": "a", "type": "STRING"}), StringInput)
    enum = parse_input({"id": "a", "type": "ENUM", "values": ["x"]})
    assert isinstance(enum, SelectInput) and enum.values == ["x"]


def test_flow_style_list_validation() -> None:
    raw = [{"id": "a", "type": "INT", "defaults": 3}, {"name": "b", "type": "BOOLEAN", "required": False}]
    defs = TypeAdapter(list[InputDef]).validate_python(raw)
    assert [d.id for d in defs] == ["a", "b"]
    assert resolve_inputs(defs, {}) == {"a": 3, "b": None}


def test_legacy_name_key() -> None:
    decl = parse_input({"name": "legacy", "type": "STRING"})
    assert decl.id == "legacy"
    assert resolve_inputs([decl], {"legacy": "v"}) == {"legacy": "v"}


def test_id_and_name_together_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_input({"id": "a", "name": "b", "type": "STRING"})


def test_common_properties_accepted() -> None:
    decl = parse_input(
        {
            "id": "a",
            "type": "STRING",
            "displayName": "A",
            "description": "the a",
            "dependsOn": {"inputs": ["b"], "condition": "{{ inputs.b }}"},
            "prefill": "p",
        }
    )
    assert decl.display_name == "A" and decl.depends_on is not None
    assert decl.depends_on.model_dump() == {"inputs": ["b"], "condition": "{{ inputs.b }}"}
    # populate_by_name: Python callers may use the snake_case field names.
    assert StringInput.model_validate({"id": "a", "type": "STRING", "display_name": "A"}).display_name == "A"


@pytest.mark.parametrize(
    "decl",
    [
        {"id": "a", "type": "STRING", "unknown": 1},
        {"id": "a", "type": "INT", "validator": "x"},  # validator belongs to STRING, not INT
        {"id": "a", "type": "BOOLEAN", "min": 1},
        {"id": "a", "type": "NOPE"},
        {"type": "STRING"},
        {"id": "", "type": "STRING"},
        {"id": "a/b", "type": "STRING"},  # ids end up in storage paths
        {"id": "-a", "type": "STRING"},
        {"id": "a", "type": "STRING", "validator": "("},  # regex that does not compile
        {"id": "a", "type": "SELECT"},  # SELECT needs values
        {"id": "a", "type": "SELECT", "values": []},
        {"id": "a", "type": "MULTISELECT"},
        {"id": "a", "type": "MULTISELECT", "values": ["a"], "options": ["b"]},
        {"id": "a", "type": "ARRAY"},  # ARRAY needs itemType
        {"id": "a", "type": "ARRAY", "itemType": "FILE"},
        {"id": "a", "type": "DATETIME", "after": "not a date"},
        {"id": "a", "type": "string"},
    ],
)
def test_bad_declarations_rejected(decl: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_input(decl)


# -- required, defaults, unknown keys --


def test_missing_required() -> None:
    with pytest.raises(InputError, match=r"^Missing required input 'needed'$") as info:
        resolve_inputs([parse_input({"id": "needed", "type": "STRING"})], {})
    assert info.value.input_id == "needed"


def test_optional_missing_is_none() -> None:
    assert resolve_inputs([parse_input({"id": "o", "type": "INT", "required": False})], {}) == {"o": None}


def test_none_and_blank_count_as_missing() -> None:
    decls = [parse_input({"id": "n", "type": "INT", "defaults": 7})]
    assert resolve_inputs(decls, {"n": None}) == {"n": 7}
    assert resolve_inputs(decls, {"n": "  "}) == {"n": 7}
    # For text inputs the empty string is a real value.
    assert resolve_one({"type": "STRING", "defaults": "d"}, "") == ""


def test_default_satisfies_required_and_is_coerced() -> None:
    assert resolve_one({"type": "INT", "defaults": "1"}) == 1
    assert resolve_one({"type": "BOOLEAN", "defaults": "TRUE"}) is True
    utc = "2024-01-01T00:00:00Z"
    assert resolve_one({"type": "DATETIME", "defaults": "2024-01-01T02:00:00+02:00"}) == utc
    assert resolve_one({"type": "JSON", "defaults": '{"a": 1}'}) == {"a": 1}


def test_given_value_wins_over_default() -> None:
    assert resolve_one({"type": "INT", "defaults": 1}, "2") == 2


def test_bad_default_is_reported_as_default() -> None:
    message = r"Invalid input 'my_input' \(default value\): expected an integer"
    bad({"type": "INT", "defaults": "abc"}, None, message)


def test_unknown_given_keys_ignored() -> None:
    decls = [parse_input({"id": "a", "type": "STRING"})]
    assert resolve_inputs(decls, {"a": "x", "other": 1}) == {"a": "x"}


def test_all_errors_reported_together() -> None:
    decls = [
        parse_input({"id": "ok", "type": "STRING"}),
        parse_input({"id": "age", "type": "INT"}),
        parse_input({"id": "flag", "type": "BOOLEAN"}),
        parse_input({"id": "req", "type": "FLOAT"}),
    ]
    with pytest.raises(InputError) as info:
        resolve_inputs(decls, {"ok": "fine", "age": "abc", "flag": "maybe"})
    err = info.value
    assert err.input_id == "age"
    assert str(err).splitlines() == [
        "Invalid input 'age': expected an integer, got 'abc'",
        "Invalid input 'flag': expected true or false, got 'maybe'",
        "Missing required input 'req'",
    ]
    assert [e.input_id for e in err.errors] == ["age", "flag", "req"]
    assert isinstance(err, ValueError)
    # It survives a trip through pickle, as when a Celery worker reports it.
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.input_id, str(copy)) == ("age", str(err))
    assert [e.input_id for e in copy.errors] == ["age", "flag", "req"]
    single = pickle.loads(pickle.dumps(err.errors[0]))
    assert single.input_id == "age" and single.errors == [single]


# -- scalar types --


def test_string() -> None:
    assert resolve_one({"type": "STRING"}, "hello") == "hello"
    assert resolve_one({"type": "STRING"}, 42) == "42"  # YAML/JSON numbers become text
    bad({"type": "STRING"}, {"a": 1}, "expected a string")


def test_string_validator_full_match() -> None:
    decl = {"type": "STRING", "validator": "[a-z]+"}
    assert resolve_one(decl, "abc") == "abc"
    bad(decl, "abc1", r"does not match validator '\[a-z\]\+'")


def test_secret() -> None:
    assert resolve_one({"type": "SECRET"}, "s3cr3t") == "s3cr3t"
    err = bad({"type": "SECRET", "validator": "[0-9]+"}, "hunter2", "secret value is invalid")
    assert "hunter2" not in str(err)


def test_int() -> None:
    assert resolve_one({"type": "INT"}, "42") == 42
    assert resolve_one({"type": "INT"}, " -7 ") == -7
    assert resolve_one({"type": "INT"}, 5) == 5
    assert resolve_one({"type": "INT"}, 5.0) == 5
    e = bad({"type": "INT"}, "abc", r"^Invalid input 'my_input': expected an integer, got 'abc'$")
    assert e.input_id == "my_input"
    bad({"type": "INT"}, "1.5", "expected an integer")
    bad({"type": "INT"}, 1.5, "expected an integer")
    bad({"type": "INT"}, True, "expected an integer")


def test_int_bounds() -> None:
    decl = {"type": "INT", "min": 1, "max": 10}
    assert resolve_one(decl, "1") == 1 and resolve_one(decl, "10") == 10
    bad(decl, "0", "0 is below the minimum 1")
    bad(decl, 11, "11 is above the maximum 10")


def test_float() -> None:
    assert resolve_one({"type": "FLOAT"}, "1.5") == 1.5
    assert resolve_one({"type": "FLOAT"}, 2) == 2.0 and isinstance(resolve_one({"type": "FLOAT"}, 2), float)
    bad({"type": "FLOAT"}, "x", "expected a number")
    bad({"type": "FLOAT"}, "nan", "expected a number")
    bad({"type": "FLOAT"}, False, "expected a number")
    bad({"type": "FLOAT", "min": 0.5, "max": 1.0}, "0.25", "below the minimum 0.5")
    bad({"type": "FLOAT", "min": 0.5, "max": 1.0}, 1.5, "above the maximum 1.0")


@pytest.mark.parametrize(
    ("given", "expected"), [("true", True), ("FALSE", False), (" false ", False), (False, False)]
)
def test_boolean(given: Any, expected: bool) -> None:
    assert resolve_one({"type": "BOOLEAN"}, given) is expected
    assert resolve_one({"type": "BOOL"}, given) is expected  # Kestra's newer name for it


@pytest.mark.parametrize("given", ["yes", "1", 1, ""])
def test_boolean_bad(given: Any) -> None:
    if given == "":
        bad({"type": "BOOLEAN"}, given, "Missing required input 'my_input'")
    else:
        bad({"type": "BOOLEAN"}, given, "expected true or false")


# -- temporal types --


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        ("2024-01-01T01:30:00+01:00", "2024-01-01T00:30:00Z"),
        ("2024-01-01T00:00:00", "2024-01-01T00:00:00Z"),  # no offset: taken as UTC
        ("2024-01-01T00:00:00.123Z", "2024-01-01T00:00:00.123Z"),
        ("2024-01-01T00:00:00.123456Z", "2024-01-01T00:00:00.123456Z"),
        ("2024-01-01", "2024-01-01T00:00:00Z"),
        (datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))), "2024-01-01T10:00:00Z"),
        (date(2024, 1, 1), "2024-01-01T00:00:00Z"),
    ],
)
def test_datetime(given: Any, expected: str) -> None:
    assert resolve_one({"type": "DATETIME"}, given) == expected


def test_datetime_bad() -> None:
    bad({"type": "DATETIME"}, "yesterday", "expected an ISO-8601 datetime")
    bad({"type": "DATETIME"}, 1700000000, "expected an ISO-8601 datetime")


def test_datetime_after_before() -> None:
    decl = {"type": "DATETIME", "after": "2024-01-01T00:00:00Z", "before": "2025-01-01T00:00:00+00:00"}
    assert resolve_one(decl, "2024-06-01T00:00:00Z") == "2024-06-01T00:00:00Z"
    bad(decl, "2023-12-31T23:59:59Z", "must be after 2024-01-01T00:00:00Z")
    assert resolve_one(decl, "2024-01-01T00:00:00Z") == "2024-01-01T00:00:00Z"  # a bound admits itself (Kestra)
    assert resolve_one(decl, "2025-01-01T01:00:00+01:00") == "2025-01-01T00:00:00Z"
    bad(decl, "2025-01-01T01:00:01+01:00", "must be before 2025-01-01T00:00:00Z")


def test_date() -> None:
    assert resolve_one({"type": "DATE"}, "2024-02-29") == "2024-02-29"
    assert resolve_one({"type": "DATE"}, date(2024, 3, 1)) == "2024-03-01"
    assert resolve_one({"type": "DATE"}, datetime(2024, 3, 1, 10, tzinfo=UTC)) == "2024-03-01"
    bad({"type": "DATE"}, "2023-02-29", "expected a date")
    bad({"type": "DATE"}, "2024-01-01T00:00:00Z", "expected a date")
    bad({"type": "DATE", "after": "2024-01-01"}, "2023-12-31", "must be after 2024-01-01")
    assert resolve_one({"type": "DATE", "after": "2024-01-01", "before": "2024-01-01"}, "2024-01-01") == "2024-01-01"


def test_time() -> None:
    assert resolve_one({"type": "TIME"}, "13:45") == "13:45:00"
    assert resolve_one({"type": "TIME"}, "13:45:07") == "13:45:07"
    assert resolve_one({"type": "TIME"}, time(8, 0)) == "08:00:00"
    bad({"type": "TIME"}, "25:00:00", "expected a time")
    bad({"type": "TIME"}, "10:00:00+02:00", "expected a time")
    bad({"type": "TIME", "before": "12:00:00"}, "12:30:00", "must be before 12:00:00")
    bad({"type": "TIME", "after": "08:00:00"}, "07:59:59", "must be after 08:00:00")
    assert resolve_one({"type": "TIME", "after": "08:00", "before": "12:00"}, "12:00") == "12:00:00"


def test_duration_min_max() -> None:
    decl = {"type": "DURATION", "min": "PT1M", "max": "PT1H"}
    assert resolve_one(decl, "PT30M") == "PT30M"
    assert resolve_one(decl, "PT1M") == "PT1M" and resolve_one(decl, "PT60M") == "PT1H"  # bounds admit themselves
    bad(decl, "PT30S", "PT30S must be more than PT1M")
    bad(decl, "P1D", "PT24H must be less than PT1H")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("PT5M", "PT5M"),
        ("pt1h30m", "PT1H30M"),
        ("P1D", "PT24H"),
        ("PT1.5S", "PT1.5S"),
        ("PT0S", "PT0S"),
        ("PT90M", "PT1H30M"),
        (timedelta(minutes=5, seconds=3), "PT5M3S"),
    ],
)
def test_duration(given: Any, expected: str) -> None:
    assert resolve_one({"type": "DURATION"}, given) == expected


@pytest.mark.parametrize("given", ["5m", "P", "PT", "P1Y", "PTM", "-PT5M", 5, timedelta(seconds=-1)])
def test_duration_bad(given: Any) -> None:
    bad({"type": "DURATION"}, given, "duration")


# -- structured types --


def test_json() -> None:
    assert resolve_one({"type": "JSON"}, '{"a": [1, 2]}') == {"a": [1, 2]}
    assert resolve_one({"type": "JSON"}, {"native": True}) == {"native": True}
    assert resolve_one({"type": "JSON"}, [1]) == [1]
    bad({"type": "JSON"}, "{not json", "invalid JSON")


def test_yaml() -> None:
    assert resolve_one({"type": "YAML"}, "a: 1\nb: [x, y]\n") == {"a": 1, "b": ["x", "y"]}
    assert resolve_one({"type": "YAML"}, {"native": 1}) == {"native": 1}
    bad({"type": "YAML"}, "a: [1, 2", "invalid YAML")


def test_array() -> None:
    decl = {"type": "ARRAY", "itemType": "INT"}
    assert resolve_one(decl, "[1, 2, 3]") == [1, 2, 3]
    assert resolve_one(decl, ["4", 5]) == [4, 5]
    assert resolve_one({"type": "ARRAY", "itemType": "STRING"}, '["a,b", "c"]') == ["a,b", "c"]
    assert resolve_one({"type": "ARRAY", "itemType": "DATE"}, ["2024-01-01"]) == ["2024-01-01"]
    bad(decl, "a,b", "expected a list as a JSON array")  # comma lists are not split
    bad(decl, '{"a": 1}', "expected a list")
    bad(decl, '[1, "x"]', r"item 1: expected an integer, got 'x'")


def test_array_model_uses_alias() -> None:
    decl = parse_input({"id": "a", "type": "ARRAY", "itemType": "FLOAT"})
    assert isinstance(decl, ArrayInput) and decl.item_type == "FLOAT"


@pytest.mark.parametrize("kind", ["SELECT", "ENUM"])
def test_select(kind: str) -> None:
    decl = {"type": kind, "values": ["dev", "prod"]}
    assert resolve_one(decl, "prod") == "prod"
    bad(decl, "staging", r"'staging' is not one of \['dev', 'prod'\]")
    assert resolve_one({**decl, "allowCustomValue": True}, "staging") == "staging"


def test_select_defaults_and_auto_select_first() -> None:
    assert resolve_one({"type": "SELECT", "values": ["a", "b"], "defaults": "b"}) == "b"
    assert resolve_one({"type": "SELECT", "values": ["a", "b"], "autoSelectFirst": True}) == "a"
    # Numeric choices from YAML are compared as text.
    assert resolve_one({"type": "SELECT", "values": [1, 2]}, 2) == "2"


def test_multiselect() -> None:
    decl = {"type": "MULTISELECT", "values": ["a", "b", "c"]}
    assert resolve_one(decl, '["a", "c"]') == ["a", "c"]
    assert resolve_one(decl, ["b"]) == ["b"]
    assert resolve_one({"type": "MULTISELECT", "options": ["x", "y"]}, ["y"]) == ["y"]
    assert resolve_one({**decl, "defaults": ["a"]}) == ["a"]
    assert resolve_one({**decl, "autoSelectFirst": True}) == ["a"]
    assert resolve_one({**decl, "allowCustomValue": True}, ["z"]) == ["z"]
    assert resolve_one({"type": "MULTISELECT", "allowCustomValue": True}, ["free"]) == ["free"]
    bad(decl, '["a", "z"]', "'z' is not one of")
    bad(decl, "a,b", "JSON array")


def test_uri() -> None:
    assert resolve_one({"type": "URI"}, "https://kestra.io/docs") == "https://kestra.io/docs"
    assert resolve_one({"type": "URI"}, "s3://bucket/key") == "s3://bucket/key"
    bad({"type": "URI"}, "kestra.io/docs", "expected a URI")
    bad({"type": "URI"}, "http://a b", "expected a URI")


def test_email() -> None:
    assert resolve_one({"type": "EMAIL"}, "ops@example.com") == "ops@example.com"
    for value in ("ops", "ops@example", "a b@example.com", "@example.com"):
        bad({"type": "EMAIL"}, value, "expected an email address")


# -- FILE --


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
def calls() -> list[tuple[str, str, bytes]]:
    return []


@pytest.fixture
def store_file(storage: LocalStorage, calls: list[tuple[str, str, bytes]]) -> Any:
    def store(input_id: str, filename: str, data: bytes) -> str:
        calls.append((input_id, filename, data))
        return storage.put(execution_uri("io.kestra.tests", "f", "exec1", "inputs", input_id, filename), data)

    return store


def test_file_from_path(tmp_path: Path, storage: LocalStorage, store_file: Any, calls: list[Any]) -> None:
    local = tmp_path / "data.csv"
    local.write_bytes(b"a,b\n1,2\n")
    uri = resolve_one({"id": "upload", "type": "FILE"}, str(local), store_file=store_file)
    assert uri == "kestra:///io/kestra/tests/f/executions/exec1/inputs/upload/data.csv"
    assert storage.get(uri) == b"a,b\n1,2\n"
    assert calls == [("upload", "data.csv", b"a,b\n1,2\n")]
    # A Path object and a file:// URL work too.
    assert resolve_one({"id": "upload", "type": "FILE"}, local, store_file=store_file) == uri
    assert resolve_one({"id": "upload", "type": "FILE"}, f"file://{local}", store_file=store_file) == uri


def test_file_from_bytes(storage: LocalStorage, store_file: Any) -> None:
    uri = resolve_one({"id": "blob", "type": "FILE"}, b"\x00\x01", store_file=store_file)
    assert uri.endswith("/inputs/blob/blob") and storage.get(uri) == b"\x00\x01"
    named = resolve_one({"id": "blob", "type": "FILE"}, ("report.pdf", b"%PDF"), store_file=store_file)
    assert named.endswith("/inputs/blob/report.pdf") and storage.get(named) == b"%PDF"
    # Client-supplied names cannot add directories or climb out of the input's folder.
    sneaky = resolve_one({"id": "blob", "type": "FILE"}, ("../../etc/x.txt", b"1"), store_file=store_file)
    assert sneaky.endswith("/inputs/blob/x.txt")
    windows = resolve_one({"id": "blob", "type": "FILE"}, ("C:\\tmp\\w.txt", b"1"), store_file=store_file)
    assert windows.endswith("/inputs/blob/w.txt")
    dots = resolve_one({"id": "blob", "type": "FILE"}, ("..", b"1"), store_file=store_file)
    assert dots.endswith("/inputs/blob/blob")


def test_file_existing_uri_kept(store_file: Any, calls: list[Any]) -> None:
    uri = "kestra:///io/kestra/tests/f/executions/old/inputs/f/a.txt"
    assert resolve_one({"type": "FILE"}, uri, store_file=store_file) == uri
    assert resolve_one({"type": "FILE"}, uri) == uri  # no storage needed for an existing URI
    assert resolve_one({"type": "FILE", "defaults": uri}) == uri
    assert calls == []


def test_file_path_without_store_file(tmp_path: Path) -> None:
    local = tmp_path / "a.txt"
    local.write_text("x")
    bad({"type": "FILE"}, str(local), "no storage available")
    bad({"type": "FILE"}, b"x", "no storage available")


def test_file_bad_values(tmp_path: Path, store_file: Any) -> None:
    bad({"type": "FILE"}, str(tmp_path / "missing.txt"), "cannot read file", store_file=store_file)
    bad({"type": "FILE"}, 42, "expected a kestra:// URI, a file path or bytes", store_file=store_file)


def test_file_model() -> None:
    assert isinstance(parse_input({"id": "f", "type": "FILE", "required": False}), FileInput)
    assert resolve_one({"type": "FILE", "required": False}) is None
