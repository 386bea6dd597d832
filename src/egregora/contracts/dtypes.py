"""Teach pandera's Ibis engine two dtypes the catalog uses and it lacks: JSON and arrays.

Without these, declaring a ``json`` or ``array<string>`` column in a contract fails with
"Data type 'object' not understood by Engine". Importing this module registers them once.
"""

import dataclasses
from typing import Any

import ibis
import ibis.expr.datatypes as dt
from pandera.dtypes import immutable
from pandera.engines import ibis_engine


@ibis_engine.Engine.register_dtype(equivalents=[dt.JSON, dt.json, dt.JSON(nullable=False)])
@immutable
class Json(ibis_engine.DataType):
    """A JSON column."""

    type = dt.json


@ibis_engine.Engine.register_dtype(equivalents=[dt.Array])
@immutable(init=True)
class Array(ibis_engine.DataType):
    """An array column; element nullability is not part of the contract."""

    type: Any = dataclasses.field(default=None, repr=False, init=False)

    def __init__(self, value_type: Any = dt.string) -> None:
        element = ibis.dtype(value_type).copy(nullable=True)
        object.__setattr__(self, "type", dt.Array(element))

    @classmethod
    def from_parametrized_dtype(cls, ibis_dtype: dt.Array) -> ibis_engine.DataType:
        # No postponed annotations here: pandera reads this signature with get_type_hints.
        return cls(ibis_dtype.value_type)
