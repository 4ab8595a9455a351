"""Checks compiled from annotations: exact JSON types, containers, unions, dataclasses, TypedDicts, paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NewType, Optional, TypedDict, Union

import pytest

from dispatchers.validation import ParamTypeError, annotation_text, compile_check, type_name
from rpcengine import RequestException

UserId = NewType("UserId", int)


@dataclass
class Node:
    label: str
    children: list[Node] = field(default_factory=list)


@dataclass
class Unresolvable:
    value: NotDefinedAnywhere  # type: ignore[name-defined]  # noqa: F821


class Options(TypedDict, total=False):
    verbose: bool


def check(annotation: Any, value: Any) -> Any:
    checker = compile_check(annotation)
    assert checker is not None
    return checker(value)


def mismatch(annotation: Any, value: Any) -> ParamTypeError:
    with pytest.raises(ParamTypeError) as caught:
        check(annotation, value)
    return caught.value


@pytest.mark.parametrize(
    ("annotation", "good", "bad"),
    [
        (int, [0, -5, 2**60], [True, 1.0, "1", None, [1]]),
        (float, [1.5, 2, -0.0], [True, "1.5", None]),
        (str, ["", "x"], [1, None, b"x"]),
        (bool, [True, False], [0, 1, "true", None]),
        (type(None), [None], [0, "", False]),
        (None, [None], [0]),
        (list, [[], [1, "a"]], [{}, "ab", (1,)]),
        (dict, [{}, {"a": 1}], [[], "a"]),
        (list[int], [[], [1, 2]], [[1, "2"], [True], {"0": 1}]),
        (dict[str, int], [{}, {"a": 1}], [{"a": "1"}, [("a", 1)]]),
        (Optional[int], [None, 3], ["3", 3.5]),  # noqa: UP045
        (int | str, [1, "1"], [1.0, None, True]),
        (Union[int, list[int]], [1, [1]], [["1"]]),  # noqa: UP007
        (Literal["a", 1], ["a", 1], ["b", 2, True]),
        (UserId, [7], ["7"]),
    ],
    ids=lambda value: annotation_text(value) if not isinstance(value, list) else "",
)
def test_exact_json_types(annotation: Any, good: list[Any], bad: list[Any]) -> None:
    for value in good:
        assert check(annotation, value) == value
    for value in bad:
        with pytest.raises(ParamTypeError):
            check(annotation, value)


def test_anything_goes_for_any_object_and_unions_with_them() -> None:
    assert compile_check(Any) is None
    assert compile_check(object) is None
    assert compile_check(int | Any) is None
    assert check(list[Any], [1, "a"]) == [1, "a"]


def test_paths_name_where_the_value_went_wrong() -> None:
    error = mismatch(dict[str, list[int]], {"ok": [1], "a b": [1, 2, "x"]})
    assert (error.path, error.expected, error.got) == ('["a b"][2]', "int", "str")
    error = mismatch(list[dict[str, int]], [{"a": 1}, {"b": None}])
    assert error.path == "[1].b"
    assert error.path_from("items") == "items[1].b"
    assert mismatch(int, "x").path_from("count") == "count"


def test_a_mismatch_is_a_request_exception_with_invalid_params_data() -> None:
    error = mismatch(list[int], [1, "2"])
    assert isinstance(error, RequestException)
    assert error.data == {
        "error": "invalid_params",
        "message": "[1] must be int, got str",
        "path": "[1]",
        "expected": "int",
        "got": "str",
    }
    assert error.data_at("values", "f(values): ", method="f") == {
        "error": "invalid_params",
        "message": "f(values): values[1] must be int, got str",
        "method": "f",
        "path": "values[1]",
        "expected": "int",
        "got": "str",
    }


def test_recursive_dataclasses_are_built_all_the_way_down() -> None:
    tree = check(Node, {"label": "root", "children": [{"label": "a", "children": [{"label": "b"}]}]})
    assert tree == Node("root", [Node("a", [Node("b")])])
    error = mismatch(Node, {"label": "root", "children": [{"label": "a", "children": [{"label": 3}]}]})
    assert error.path == "children[0].children[0].label"


def test_typeddict_optional_keys_may_be_left_out_unknown_ones_may_not() -> None:
    assert check(Options, {}) == {}
    assert check(Options, {"verbose": True}) == {"verbose": True}
    assert mismatch(Options, {"verbose": 1}).path == "verbose"
    unknown = mismatch(Options, {"quiet": True})
    assert (unknown.path, unknown.expected, unknown.got) == ("quiet", "one of verbose", "unknown key")


def test_a_union_reports_the_alternative_whose_shape_fits() -> None:
    error = mismatch(Node | None, {"label": 1})
    assert (error.path, error.expected) == ("label", "str")
    error = mismatch(int | None, "x")
    assert (error.path, error.expected, error.got) == ("", "int | None", "str")


@pytest.mark.parametrize(
    ("annotation", "fragment"),
    [
        (set[int], "cannot check values against set[int]"),
        (tuple[int, int], "cannot check values against tuple[int, int]"),
        (dict[int, str], "JSON object keys are strings"),
        (list[bytes], "cannot check values against bytes"),
        (Unresolvable, "cannot resolve the annotations of Unresolvable"),
    ],
)
def test_annotations_that_cannot_be_checked_raise_type_error_at_once(annotation: Any, fragment: str) -> None:
    with pytest.raises(TypeError) as caught:
        compile_check(annotation)
    assert fragment in str(caught.value)


def test_annotation_text_and_type_name() -> None:
    assert annotation_text(int) == "int"
    assert annotation_text(list[Node]) == "list[Node]"
    assert annotation_text(Optional[dict[str, int]]) == "dict[str, int] | None"  # noqa: UP045
    assert annotation_text(Literal["a", 1]) == "Literal['a', 1]"
    assert annotation_text(UserId) == "UserId"
    assert annotation_text("list[Point]") == "list[Point]"
    assert annotation_text(None) == "None"
    assert [type_name(value) for value in (None, True, 1, 1.5, "", [], {})] == [
        "None", "bool", "int", "float", "str", "list", "dict",
    ]  # fmt: skip
