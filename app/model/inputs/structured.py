"""Structured inputs: JSON, YAML, URI, EMAIL, SELECT, MULTISELECT, ARRAY, FILE."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import Field, TypeAdapter, field_validator, model_validator

from app.model.inputs.scalars import (
    BooleanInput,
    DateInput,
    DateTimeInput,
    DurationInput,
    FloatInput,
    Input,
    IntInput,
    StringInput,
    TimeInput,
)
from app.model.inputs.values import InvalidValue, StoreFile, describe, json_list, scalar_str
from app.model.storage_uri import is_storage_uri


class _Document(Input):
    """JSON/YAML: a string is parsed; a native value is kept, since it is what parsing would have produced."""

    fmt: ClassVar[str]

    def coerce(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value) if self.fmt == "JSON" else yaml.safe_load(value)
        except (ValueError, yaml.YAMLError) as exc:
            raise InvalidValue(f"invalid {self.fmt}: {exc}") from None


class JsonInput(_Document):
    type: Literal["JSON"]
    fmt: ClassVar[str] = "JSON"


class YamlInput(_Document):
    type: Literal["YAML"]
    fmt: ClassVar[str] = "YAML"


class _Pattern(Input):
    pattern: ClassVar[re.Pattern[str]]
    what: ClassVar[str]

    def coerce(self, value: Any) -> Any:
        text = scalar_str(value).strip()
        if not self.pattern.fullmatch(text):
            raise InvalidValue(f"expected {self.what}, got {describe(value)}")
        return text


class UriInput(_Pattern):
    type: Literal["URI"]
    pattern: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
    what: ClassVar[str] = "a URI with a scheme such as 'https://...'"


class EmailInput(_Pattern):
    type: Literal["EMAIL"]
    # Deliberately loose: the real grammar (RFC 5322) is huge and only a mail server can truly validate.
    pattern: ClassVar[re.Pattern[str]] = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
    what: ClassVar[str] = "an email address"


class _Choice(Input):
    allow_custom_value: bool = Field(default=False, alias="allowCustomValue")
    auto_select_first: bool = Field(default=False, alias="autoSelectFirst")

    @field_validator("values", "options", mode="before", check_fields=False)
    @classmethod
    def _texts(cls, items: Any) -> Any:
        # YAML reads `values: [1, 2]` as ints; Kestra treats choices as text, so compare them as text.
        if isinstance(items, list):
            return [scalar_str(i) if isinstance(i, int | float) else i for i in items]
        return items

    def choices(self) -> list[str]:
        raise NotImplementedError

    def pick(self, value: Any) -> str:
        text = scalar_str(value)
        if not self.allow_custom_value and text not in self.choices():
            raise InvalidValue(f"{describe(text)} is not one of {self.choices()}")
        return text


class SelectInput(_Choice):
    type: Literal["SELECT", "ENUM"]  # ENUM is Kestra's deprecated spelling of SELECT
    values: list[str] = Field(min_length=1)

    def choices(self) -> list[str]:
        return self.values

    def coerce(self, value: Any) -> Any:
        return self.pick(value)

    def initial(self) -> Any:
        return self.values[0] if self.defaults is None and self.auto_select_first else self.defaults


class MultiselectInput(_Choice):
    type: Literal["MULTISELECT"]
    values: list[str] | None = None
    options: list[str] | None = None  # the older name of `values`

    @model_validator(mode="after")
    def _has_choices(self) -> MultiselectInput:
        if not (self.values or self.options) and not self.allow_custom_value:
            raise ValueError("MULTISELECT needs 'values' (or legacy 'options') unless allowCustomValue")
        if self.values and self.options:
            raise ValueError("use either 'values' or the legacy 'options', not both")
        return self

    def choices(self) -> list[str]:
        return list(self.values or self.options or [])

    def coerce(self, value: Any) -> Any:
        return [self.pick(item) for item in json_list(value, "a list of values")]

    def initial(self) -> Any:
        first = self.choices()[:1]
        return first if self.defaults is None and self.auto_select_first and first else self.defaults


# Any scalar-ish type can be an item; FILE, SECRET and the choice types make no sense inside a plain array.
ItemType = (
    Literal["STRING", "INT", "FLOAT", "BOOLEAN", "DATETIME", "DATE", "TIME"]
    | Literal["DURATION", "JSON", "YAML", "URI", "EMAIL"]
)


# The declaration of one item, validated as the input of that type would be.
_ITEM_ADAPTER: TypeAdapter[Input] = TypeAdapter(Annotated[  # type: ignore[arg-type]
    StringInput | IntInput | FloatInput | BooleanInput | DateTimeInput | DateInput | TimeInput | DurationInput
    | JsonInput | YamlInput | UriInput | EmailInput,
    Field(discriminator="type"),
])


class ArrayInput(Input):
    type: Literal["ARRAY"]
    item_type: ItemType = Field(alias="itemType")

    def coerce(self, value: Any) -> Any:
        # Reuse the item type's own coercion so "1" in an INT array behaves exactly like an INT input.
        item_def = _ITEM_ADAPTER.validate_python({"id": self.id, "type": self.item_type})
        out = []
        for index, item in enumerate(json_list(value, "a list")):
            try:
                out.append(item_def.coerce(item))
            except InvalidValue as exc:
                raise InvalidValue(f"item {index}: {exc}") from None
        return out


class FileInput(Input):
    """A file: a `kestra://` URI already in storage, or a local path / bytes that get uploaded."""

    type: Literal["FILE"]

    # store_file is passed per call instead of living on the model, so declarations stay plain flow data.
    def coerce(self, value: Any, store_file: StoreFile | None = None) -> Any:
        if is_storage_uri(value):
            return value
        if store_file is None:
            raise InvalidValue(f"cannot upload {describe(value)}: no storage available, pass a kestra:// URI")
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], bytes | bytearray):
            filename, data = str(value[0]), bytes(value[1])  # (filename, content) as uploaded over HTTP
        elif isinstance(value, bytes | bytearray):
            filename, data = self.id, bytes(value)
        elif isinstance(value, str | Path):
            path = Path(str(value).removeprefix("file://")).expanduser()
            try:
                filename, data = path.name, path.read_bytes()
            except OSError as exc:
                raise InvalidValue(f"cannot read file {str(value)!r}: {exc.strerror or exc}") from None
        else:
            raise InvalidValue(f"expected a kestra:// URI, a file path or bytes, got {describe(value)}")
        # Uploaded names are client-controlled: keep only the base name so it stays one path segment.
        filename = re.split(r"[/\\]", filename)[-1]
        return store_file(self.id, filename if filename not in ("", ".", "..") else self.id, data)
