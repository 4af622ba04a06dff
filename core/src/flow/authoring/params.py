"""DAG and task params: values with an optional JSON schema, overridable by a run's conf.

jsonschema is imported only when a param with a schema is validated, so a DAG file without
schemas does not pay for it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from flow.authoring.location import user_location
from flow.exceptions import ParamValidationError


class _NotSet:
    def __repr__(self) -> str:
        return "NOTSET"

    def __bool__(self) -> bool:
        return False


NOTSET: Any = _NotSet()


class Param:
    """A param value with a JSON schema: ``Param(5, type="integer", minimum=0)``.

    A default that fails its own schema is a definition error, reported at the line that made
    the Param. A Param without a default must be given in the run's conf.
    """

    __slots__ = ("default", "definition_file", "definition_lineno", "description", "schema")

    def __init__(self, default: Any = NOTSET, description: str | None = None,
                 **schema: Any) -> None:
        self.default = default
        self.description = description
        self.schema = schema
        self.definition_file, self.definition_lineno = user_location(2)
        if default is not NOTSET and schema:
            try:
                self._validate(default, "the default")
            except ParamValidationError as err:
                raise ParamValidationError(err.message, self.definition_file,
                                           self.definition_lineno) from None

    @property
    def has_value(self) -> bool:
        return self.default is not NOTSET

    @property
    def value(self) -> Any:
        return self.default

    def resolve(self, value: Any = NOTSET, name: str = "param") -> Any:
        """The validated value: ``value`` if given, else the default."""
        final = self.default if value is NOTSET else value
        if final is NOTSET:
            raise ParamValidationError(
                f"param {name!r} has no default and no value was given: pass it in the run's "
                "conf (e.g. flow dags trigger DAG --conf '{\"" + name + "\": ...}')")
        if self.schema:
            self._validate(final, f"param {name!r}")
        return final

    def _validate(self, value: Any, what: str) -> None:
        import jsonschema

        try:
            jsonschema.validate(value, self.schema, format_checker=jsonschema.FormatChecker())
        except jsonschema.ValidationError as err:
            raise ParamValidationError(
                f"{what} {value!r} does not satisfy the schema {self.schema}: {err.message}"
            ) from None
        except jsonschema.SchemaError as err:
            raise ParamValidationError(
                f"{what} has an invalid JSON schema: {err.message}") from None

    def dump(self) -> dict[str, Any]:
        """JSON-ready form; a missing default is ``{"has_default": false}``."""
        data: dict[str, Any] = {"description": self.description, "schema": dict(self.schema)}
        if self.default is NOTSET:
            data["has_default"] = False
            data["default"] = None
        else:
            data["has_default"] = True
            data["default"] = self.default
        return data

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> Param:
        param = cls.__new__(cls)
        param.default = data["default"] if data.get("has_default", True) else NOTSET
        param.description = data.get("description")
        param.schema = dict(data.get("schema") or {})
        param.definition_file, param.definition_lineno = "<serialized>", 0
        return param

    def __copy__(self) -> Param:
        clone = Param.__new__(Param)
        for slot in self.__slots__:
            setattr(clone, slot, getattr(self, slot))
        clone.schema = dict(self.schema)
        return clone

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Param) and self.default == other.default
                and self.description == other.description and self.schema == other.schema)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Param({self.default!r}, description={self.description!r}, schema={self.schema})"


class ParamsDict(MutableMapping[str, Any]):
    """name -> Param. Reading a key gives the param's value; ``get_param`` gives the Param."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self._params: dict[str, Param] = {}
        for name, value in (params or {}).items():
            self[name] = value

    def __setitem__(self, name: str, value: Any) -> None:
        if isinstance(value, Param):
            self._params[name] = value
        else:
            plain = Param.__new__(Param)
            plain.default, plain.description, plain.schema = value, None, {}
            plain.definition_file, plain.definition_lineno = "<value>", 0
            self._params[name] = plain

    def __getitem__(self, name: str) -> Any:
        return self._params[name].value

    def __delitem__(self, name: str) -> None:
        del self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def get_param(self, name: str) -> Param:
        return self._params[name]

    def items_params(self) -> Iterator[tuple[str, Param]]:
        return iter(self._params.items())

    def copy(self) -> ParamsDict:
        clone = ParamsDict()
        clone._params = {name: copy.copy(p) for name, p in self._params.items()}
        return clone

    def merged(self, other: ParamsDict | Mapping[str, Any] | None) -> ParamsDict:
        """A new ParamsDict: these params, overridden by ``other``'s."""
        result = self.copy()
        if isinstance(other, ParamsDict):
            result._params.update(other._params)
        elif other:
            for name, value in other.items():
                result[name] = value
        return result

    def resolve(self, conf: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The run's params: defaults overridden by ``conf``, each validated.

        Raises ParamValidationError naming the param. Keys of ``conf`` that are not params
        are passed through, as they are in Airflow.
        """
        conf = dict(conf or {})
        resolved = {name: param.resolve(conf.pop(name, NOTSET), name)
                    for name, param in self._params.items()}
        resolved.update(conf)
        return resolved

    def validate(self) -> None:
        """Check every default that is set against its schema."""
        for name, param in self._params.items():
            if param.has_value:
                param.resolve(name=name)

    def dump(self) -> dict[str, dict[str, Any]]:
        return {name: param.dump() for name, param in self._params.items()}

    @classmethod
    def load(cls, data: Mapping[str, Mapping[str, Any]]) -> ParamsDict:
        result = cls()
        result._params = {name: Param.load(value) for name, value in data.items()}
        return result

    def __repr__(self) -> str:
        return f"ParamsDict({self._params!r})"
