"""Record models to polars schemas and tables, so even an empty partition has typed columns."""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Iterable
from enum import Enum

import polars as pl
from pydantic import BaseModel

_SCALARS: dict[type, pl.DataType] = {
    str: pl.String(),
    int: pl.Int64(),
    float: pl.Float64(),
    bool: pl.Boolean(),
    dt.date: pl.Date(),
    dt.datetime: pl.Datetime("us", "UTC"),
}


def _dtype(annotation: typing.Any) -> pl.DataType:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {annotation}")
        return _dtype(args[0])
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(annotation)
        return pl.List(_dtype(inner))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return pl.String()
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no polars type for {annotation!r}")


def polars_schema(model: type[BaseModel]) -> pl.Schema:
    """The polars schema of a record model, field order preserved."""
    return pl.Schema({name: _dtype(f.annotation) for name, f in model.model_fields.items()})


def records_to_frame(records: Iterable[BaseModel], model: type[BaseModel]) -> pl.DataFrame:
    """Records -> typed DataFrame (enums as their string values)."""
    rows = [r.model_dump(mode="python") for r in records]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, Enum):
                row[key] = value.value
    return pl.DataFrame(rows, schema=polars_schema(model))


def true_share(table: pl.DataFrame, column: str) -> float:
    """Share of rows whose boolean ``column`` is true (0 for an empty table)."""
    if not len(table):
        return 0.0
    rate = table[column].mean()
    if not isinstance(rate, int | float):  # a non-empty boolean column has a numeric mean
        raise TypeError(f"{column} must be a boolean column, its mean is {rate!r}")
    return float(rate)
