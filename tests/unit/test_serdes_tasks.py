"""Kestra's serdes conversions (workers/plugins/serdes.py) as real flows: CSV, JSON and Ion files of the internal
storage converted each way, with the options that shape them, read back with Client.download."""

from __future__ import annotations

import json
from typing import Any

import yaml

from app.model.states import State

WRITE = "io.kestra.plugin.core.storage.Write"
SERDES = "io.kestra.plugin.serdes"


def write(content: str, extension: str = ".csv", task_id: str = "src") -> dict[str, Any]:
    return {"id": task_id, "type": WRITE, "content": content, "extension": extension}


def convert(kind: str, source: str = "src", task_id: str = "out", **props: Any) -> dict[str, Any]:
    return {"id": task_id, "type": f"{SERDES}.{kind}", "from": f"{{{{ outputs.{source}.uri }}}}", **props}


def run(client: Any, *tasks: dict[str, Any]) -> Any:
    flow = {"id": "serdes", "namespace": "serdes.tests", "tasks": list(tasks)}
    return client.run(yaml.safe_dump(flow, sort_keys=False), wait=True, timeout=60)


def files(client: Any, *tasks: dict[str, Any]) -> dict[str, bytes]:
    ex = run(client, *tasks)
    assert ex.state == State.SUCCESS, ex.to_json()
    return {r.task_id: client.download(r.outputs["uri"]) for r in ex.task_runs if "uri" in r.outputs}


def failure(client: Any, *tasks: dict[str, Any]) -> str:
    ex = run(client, *tasks)
    assert ex.state == State.FAILED, ex.to_json()
    return str(next(r for r in ex.task_runs if r.state == State.FAILED).error)


CSV = 'id,name,note\n1,ada,"likes, commas"\n2,grace,\n'


def test_csv_to_ion_to_json_and_back_to_csv(client: Any) -> None:
    out = files(client, write(CSV), convert("csv.CsvToIon", task_id="ion"),
                convert("json.IonToJson", "ion", "json"), convert("json.JsonToIon", "json", "ion2"),
                convert("csv.IonToCsv", "ion2", "csv"))
    assert out["ion"] == b'{id:"1",name:"ada",note:"likes, commas"}\n{id:"2",name:"grace",note:""}\n'
    assert [json.loads(line) for line in out["json"].decode().splitlines()] == [
        {"id": "1", "name": "ada", "note": "likes, commas"}, {"id": "2", "name": "grace", "note": ""}]
    assert out["ion2"] == out["ion"]
    assert out["csv"].decode() == CSV


def test_csv_reading_options(client: Any) -> None:
    text = "# exported\n1;'a;b'\n\n2;c\n"
    out = files(client, write(text), convert("csv.CsvReader", header=False, fieldSeparator=";", textDelimiter="'",
                                             skipEmptyRows=True, skipRows=0))
    assert out["out"] == b'["# exported"]\n["1","a;b"]\n["2","c"]\n'
    headed = files(client, write("h1,h2\nskip,me\n1,2\n"), convert("csv.CsvToIon", skipRows=1))
    assert headed["out"] == b'{h1:"1",h2:"2"}\n'
    assert "line 3 has 3 fields, the first one 2 (errorOnDifferentFieldCount)" in failure(
        client, write("a,b\n1,2\n1,2,3\n"), convert("csv.CsvToIon", errorOnDifferentFieldCount=True))
    latin = files(client, write('{name:"café"}\n', ".ion"),
                  convert("csv.IonToCsv", task_id="csv", charset="ISO-8859-1"),
                  convert("csv.CsvToIon", "csv", charset="ISO-8859-1"))
    assert latin["csv"] == "name\ncafé\n".encode("latin-1") and latin["out"] == '{name:"café"}\n'.encode()


def test_ion_to_csv_formats_dates_times_and_zones(client: Any) -> None:
    ion = '{at:2024-01-02T03:04:05.250Z,day:2024-01-02,amount:1.50,ok:true,n:null,tags:["a"]}\n'
    out = files(client, write(ion, ".ion"), convert("csv.IonToCsv", timeZoneId="Europe/Paris"),
                convert("csv.CsvWriter", task_id="custom", header=False, fieldSeparator=";", lineDelimiter="\r\n",
                        alwaysDelimitText=True, dateFormat="dd/MM/yyyy", dateTimeFormat="yyyy-MM-dd HH:mm:ss Z",
                        timeZoneId="UTC", charset="UTF-16"))
    assert out["out"].decode() == 'at,day,amount,ok,n,tags\n2024-01-02T04:04:05.250+01:00,2024-01-02,1.50,true,,' \
                                  '"[""a""]"\n'
    assert out["custom"].decode("utf-16") == '"2024-01-02 03:04:05 +0000";"02/01/2024";"1.50";"true";"";"[""a""]"\r\n'
    assert "pattern letter 'Q'" in failure(client, write(ion, ".ion"), convert("csv.IonToCsv", dateFormat="QQ"))
    assert "Invalid data of type List with header" in failure(client, write('["a"]\n', ".ion"),
                                                              convert("csv.IonToCsv"))


def test_json_documents_and_arrays(client: Any) -> None:
    out = files(client, write('[{"a": 1}, {"a": 2.5, "b": [true, null]}]', ".json"),
                convert("json.JsonToIon", newLine=False, task_id="ion"),
                convert("json.IonToJson", "ion", "array", newLine=False),
                convert("json.JsonWriter", "ion", "lines"))
    assert out["ion"] == b"{a:1}\n{a:2.5e+0,b:[true,null]}\n"
    assert json.loads(out["array"]) == [{"a": 1}, {"a": 2.5, "b": [True, None]}]
    assert out["lines"] == b'{"a": 1}\n{"a": 2.5, "b": [true, null]}\n'
    zoned = files(client, write("{at:2024-01-02T03:04:05Z}\n", ".ion"),
                  convert("json.IonToJson", timeZoneId="America/New_York"))
    assert json.loads(zoned["out"]) == {"at": "2024-01-01T22:04:05-05:00"}
    assert "not valid JSON lines" in failure(client, write("{nope", ".json"), convert("json.JsonReader"))
    latin = "{\"name\": \"caf\\u00e9\"}"
    encoded = files(client, write(latin, ".json"), convert("json.JsonToIon", task_id="ion"),
                    convert("json.IonToJson", "ion", charset="ISO-8859-1"))
    assert encoded["out"] == '{"name": "café"}\n'.encode("latin-1")


def test_only_files_of_the_namespace_are_read(client: Any) -> None:
    message = failure(client, {"id": "out", "type": f"{SERDES}.csv.CsvToIon",
                               "from": "kestra:///other/ns/flow/executions/x/file.csv"})
    assert "is not a file of the namespace 'serdes.tests'" in message


def test_a_sql_store_file_converts_to_csv_and_json(client: Any) -> None:
    """The SQL tasks' STORE files are the Ion these tasks read: typed cells come out formatted."""
    query = {"id": "src", "type": "io.kestra.plugin.jdbc.duckdb.Query", "url": "jdbc:duckdb:", "fetchType": "STORE",
             "sql": "SELECT 1 AS id, TIMESTAMP '2024-01-02 03:04:05' AS at, 1.50::DECIMAL(4, 2) AS amount, "
                    "DATE '2024-01-02' AS day"}
    out = files(client, query, convert("csv.IonToCsv"), convert("json.IonToJson", task_id="json"))
    assert out["out"].decode() == "id,at,amount,day\n1,2024-01-02T03:04:05.000Z,1.50,2024-01-02\n"
    assert json.loads(out["json"]) == {"id": 1, "at": "2024-01-02T03:04:05", "amount": 1.5, "day": "2024-01-02"}
