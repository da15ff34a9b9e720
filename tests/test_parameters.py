"""-p NAME=TYPE:VALUE parameters, parsed as cvat-cli parses them and checked against factories."""

from __future__ import annotations

import pytest
from cvat_aa.parameters import (
    FunctionParameterError,
    check_factory_parameters,
    parse_function_parameter,
)
from cvat_cli._internal.parsers import parse_function_parameter as cvat_cli_parse


@pytest.mark.parametrize(
    "text",
    [
        "name=str:abc",
        "n=int:42",
        "x=float:0.25",
        "b=bool:true",
        "b=bool:no",
        "b=bool:1",
        "s=str:a=b:c",
        "e=str:",
    ],
)
def test_parameters_parse_as_cvat_cli_parses_them(text):
    assert parse_function_parameter(text) == cvat_cli_parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("novalue", "NAME=TYPE:VALUE"),
        ("n=42", "has no type"),
        ("n=complex:1", "unsupported type 'complex'"),
        ("n=int:four", "'four' is not a valid int"),
        ("b=bool:maybe", "not a valid bool"),
    ],
)
def test_malformed_parameters_get_a_clear_error(text, message):
    with pytest.raises(FunctionParameterError, match=message):
        parse_function_parameter(text)


def factory(model_name: str, threshold: float = 0.5, size: int = 640, verbose: bool = False):
    return (model_name, threshold, size, verbose)


def test_valid_parameters_pass_the_check():
    check_factory_parameters(
        factory, {"model_name": "m", "threshold": 1, "size": 3}, function_name="f"
    )


def test_unknown_parameter_error_lists_the_factorys_parameters():
    with pytest.raises(FunctionParameterError) as info:
        check_factory_parameters(factory, {"model_name": "m", "colour": "red"}, function_name="f")
    message = str(info.value)
    assert "colour" in message
    assert "model_name: str (required), threshold: float = 0.5, size: int = 640" in message


def test_missing_required_parameter_is_reported():
    with pytest.raises(FunctionParameterError, match="missing a required argument: 'model_name'"):
        check_factory_parameters(factory, {}, function_name="f")


def test_ill_typed_parameter_is_reported_with_expected_type():
    with pytest.raises(FunctionParameterError, match="parameter 'size' must be int, got str '640'"):
        check_factory_parameters(factory, {"model_name": "m", "size": "640"}, function_name="f")


def test_bool_is_not_accepted_for_an_int_parameter():
    with pytest.raises(FunctionParameterError, match="'size' must be int"):
        check_factory_parameters(factory, {"model_name": "m", "size": True}, function_name="f")


def test_factories_with_var_keywords_accept_any_extra_parameter():
    def open_factory(model_name: str, **kwargs):
        return None

    check_factory_parameters(open_factory, {"model_name": "m", "anything": 1}, function_name="f")
