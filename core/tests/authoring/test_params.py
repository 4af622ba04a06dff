"""Params: defaults, JSON-schema validation, conf overrides, serialization."""

from __future__ import annotations

import json

import pytest

from flow import DAG, Param
from flow.authoring.params import ParamsDict
from flow.exceptions import ParamValidationError
from flow.operators import EmptyOperator


def test_conf_overrides_defaults_and_extra_keys_pass_through():
    params = ParamsDict({"n": Param(1, type="integer"), "plain": "x"})
    assert params.resolve(None) == {"n": 1, "plain": "x"}
    assert params.resolve({"n": 5, "other": True}) == {"n": 5, "plain": "x", "other": True}


def test_conf_value_failing_the_schema_names_the_param():
    params = ParamsDict({"n": Param(1, type="integer", minimum=0)})
    with pytest.raises(ParamValidationError, match="param 'n' -3 does not satisfy"):
        params.resolve({"n": -3})


def test_param_without_default_is_required():
    params = ParamsDict({"region": Param(type="string", enum=["eu", "us"])})
    with pytest.raises(ParamValidationError, match="'region' has no default"):
        params.resolve({})
    assert params.resolve({"region": "eu"}) == {"region": "eu"}


def test_format_keywords_are_checked():
    with pytest.raises(ParamValidationError, match="does not satisfy"):
        Param("not a date", type="string", format="date")
    assert Param("2024-01-31", type="string", format="date").resolve() == "2024-01-31"


def test_reading_a_params_dict_gives_values_and_get_param_the_param():
    params = ParamsDict({"n": Param(2, description="how many", type="integer")})
    assert params["n"] == 2 and dict(params) == {"n": 2}
    assert params.get_param("n").description == "how many"


def test_dump_and_load_round_trip_through_json():
    params = ParamsDict({"n": Param(2, description="d", type="integer"),
                         "req": Param(type="string"), "v": [1, 2]})
    loaded = ParamsDict.load(json.loads(json.dumps(params.dump())))
    assert loaded.dump() == params.dump()
    with pytest.raises(ParamValidationError):
        loaded.resolve({"n": "x", "req": "a"})
    assert loaded.resolve({"req": "a"}) == {"n": 2, "req": "a", "v": [1, 2]}


def test_task_params_override_dag_params_for_that_task():
    with DAG("p", params={"a": 1, "b": 2}) as dag:
        op = EmptyOperator(task_id="t", params={"b": 3})
    assert dict(op.params) == {"a": 1, "b": 3}
    assert dict(dag.params) == {"a": 1, "b": 2}
