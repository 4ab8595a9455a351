"""Handlers that take parameters: data bound to the signature before the call, mismatches answered invalid_params."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import pytest

from dispatchers import DESCRIBE_METHOD, MethodDispatcher, ParamsHandler, Registry, takes_params
from rpcengine import Notification, Request, RequestException

if TYPE_CHECKING:
    from rpcengine import messages  # resolvable by type checkers only, not at run time


@dataclass
class Point:
    x: int
    y: int = 0


@dataclass
class Shape:
    name: str
    points: list[Point]


class Tag(TypedDict):
    name: str
    count: int


class Calc:
    """Handlers in the style of zerorpc and tinyrpc."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def rpc_add(self, a: int, b: int) -> int:
        """Return a + b."""
        self.calls.append("add")
        return a + b

    def rpc_scale(self, values: list[float], factor: float = 2.0) -> list[float]:
        """Multiply every value.

        The values are numbers.
        """
        return [value * factor for value in values]

    def rpc_ping(self) -> str:
        return "pong"

    def rpc_echo(self, value):  # type: ignore[no-untyped-def]
        return value

    def rpc_kinds(self, a: int, /, b: int, *, c: int = 3) -> list[int]:
        return [a, b, c]

    def rpc_sum(self, *numbers: int) -> int:
        return sum(numbers)

    def rpc_options(self, **options: int) -> dict[str, int]:
        return options

    def rpc_whoami(self, request: Request, greeting: str = "hi") -> str:
        assert isinstance(request, Request)
        return f"{greeting}, caller of {request.method} (id {request.message_id})"

    def rpc_area(self, shape: Shape) -> int:
        assert isinstance(shape, Shape) and all(isinstance(point, Point) for point in shape.points)
        return sum(point.x + point.y for point in shape.points)

    def rpc_tag(self, tag: Tag) -> str:
        assert type(tag) is dict
        return f"{tag['name']}:{tag['count']}"

    def rpc_maybe(self, value: int | None = None, label: str | list[str] = "x") -> list[Any]:
        return [value, label]


def call(dispatcher: Any, method: str, data: Any = None) -> Any:
    return dispatcher(Request(7, method, data))


def refusal(dispatcher: Any, method: str, data: Any = None) -> dict[str, Any]:
    with pytest.raises(RequestException) as caught:
        call(dispatcher, method, data)
    return caught.value.data  # type: ignore[no-any-return]


@pytest.fixture
def calc() -> MethodDispatcher:
    return MethodDispatcher(Calc(), unpack_params=True)


def test_a_list_is_positional_an_object_keyword_null_nothing_a_scalar_one_argument(calc: MethodDispatcher) -> None:
    assert call(calc, "add", [2, 3]) == 5
    assert call(calc, "add", {"b": 3, "a": 2}) == 5
    assert call(calc, "ping") == "pong"
    assert call(calc, "ping", []) == "pong"
    assert call(calc, "ping", {}) == "pong"
    assert call(calc, "echo", 5) == 5
    assert call(calc, "echo", "text") == "text"
    assert call(calc, "echo", [[1, 2]]) == [1, 2]
    assert call(calc, "scale", [[1, 2.5]]) == [2.0, 5.0]
    assert call(calc, "scale", {"values": [1], "factor": 3}) == [3]
    assert call(calc, "kinds", [1, 2]) == [1, 2, 3]
    assert call(calc, "sum", [1, 2, 3]) == 6
    assert call(calc, "options", {"x": 1, "y": 2}) == {"x": 1, "y": 2}
    assert calc(Notification(3, "add", [1, 1])) == 2


def test_keyword_only_and_positional_only(calc: MethodDispatcher) -> None:
    assert refusal(calc, "kinds", [1, 2, 3]) == {
        "error": "invalid_params",
        "message": "kinds(a, /, b, *, c=3) takes 2 positional arguments, got 3",
        "method": "kinds",
        "expected": "kinds(a, /, b, *, c=3)",
        "got": "3 arguments",
    }
    assert refusal(calc, "kinds", {"a": 1, "b": 2, "c": 3}) == {
        "error": "invalid_params",
        "message": "kinds(a, /, b, *, c=3) takes a by position only: send a list",
        "method": "kinds",
        "expected": "kinds(a, /, b, *, c=3)",
        "got": "keyword arguments a, b, c",
    }

    def keyword_only(*, c: int) -> int:
        return c

    handler = ParamsHandler("keyword_only", keyword_only)
    assert handler(Request(1, "keyword_only", {"c": 4})) == 4
    with pytest.raises(RequestException) as caught:
        handler(Request(1, "keyword_only", [4]))
    assert caught.value.data["message"] == "keyword_only(*, c) takes no positional arguments, got 1"


def test_too_many_arguments(calc: MethodDispatcher) -> None:
    assert refusal(calc, "add", [1, 2, 3]) == {
        "error": "invalid_params",
        "message": "add(a, b) takes 2 arguments, got 3",
        "method": "add",
        "expected": "add(a, b)",
        "got": "3 arguments",
    }
    assert refusal(calc, "scale", [[1], 2, 3])["message"] == "scale(values, factor=2.0) takes 1 to 2 arguments, got 3"
    assert refusal(calc, "ping", 1) == {
        "error": "invalid_params",
        "message": "ping() takes no arguments, got 1",
        "method": "ping",
        "expected": "ping()",
        "got": "1 argument",
    }


def test_too_few_arguments(calc: MethodDispatcher) -> None:
    assert refusal(calc, "add", [1]) == {
        "error": "invalid_params",
        "message": "add(a, b) missing 1 required argument: b",
        "method": "add",
        "expected": "add(a, b)",
        "got": "1 argument",
    }
    assert refusal(calc, "add") == {
        "error": "invalid_params",
        "message": "add(a, b) missing 2 required arguments: a, b",
        "method": "add",
        "expected": "add(a, b)",
        "got": "no arguments",
    }
    assert refusal(calc, "add", {"a": 1})["message"] == "add(a, b) missing 1 required argument: b"


def test_unknown_keyword(calc: MethodDispatcher) -> None:
    assert refusal(calc, "add", {"a": 1, "b": 2, "c": 3}) == {
        "error": "invalid_params",
        "message": "add(a, b) got unexpected keyword argument c",
        "method": "add",
        "expected": "add(a, b)",
        "got": "keyword arguments a, b, c",
    }
    assert refusal(calc, "add", {"x": 1, "y": 2})["message"] == "add(a, b) got unexpected keyword arguments x, y"


def test_the_handler_is_not_called_when_the_data_does_not_fit() -> None:
    service = Calc()
    dispatcher = MethodDispatcher(service, unpack_params=True)
    for data in ([1, 2, 3], [1], {"c": 1}, [1, "2"]):
        with pytest.raises(RequestException):
            call(dispatcher, "add", data)
    assert service.calls == []
    assert call(dispatcher, "add", [1, 2]) == 3
    assert service.calls == ["add"]


def test_wrong_types(calc: MethodDispatcher) -> None:
    assert refusal(calc, "add", [1, "2"]) == {
        "error": "invalid_params",
        "message": "add(a, b): b must be int, got str",
        "method": "add",
        "path": "b",
        "expected": "int",
        "got": "str",
    }
    assert refusal(calc, "add", [True, 1])["message"] == "add(a, b): a must be int, got bool"
    assert refusal(calc, "scale", [[1, "x"]]) == {
        "error": "invalid_params",
        "message": "scale(values, factor=2.0): values[1] must be float, got str",
        "method": "scale",
        "path": "values[1]",
        "expected": "float",
        "got": "str",
    }
    assert refusal(calc, "sum", [1, 2, None])["path"] == "numbers[2]"
    options = refusal(calc, "options", {"x": 1, "y": "no"})
    assert (options["path"], options["message"]) == ("y", "options(**options): y must be int, got str")
    assert call(calc, "maybe", [None, ["a"]]) == [None, ["a"]]
    maybe = refusal(calc, "maybe", ["1"])
    assert (maybe["path"], maybe["expected"], maybe["got"]) == ("value", "int | None", "str")
    assert refusal(calc, "maybe", [1, ["a", 2]])["path"] == "label[1]", "the alternative whose shape fits reports"


def test_nested_dataclass_params_are_built_and_checked(calc: MethodDispatcher) -> None:
    shape = {"name": "s", "points": [{"x": 1}, {"x": 2, "y": 3}]}
    assert call(calc, "area", [shape]) == 6
    assert call(calc, "area", {"shape": shape}) == 6
    bad = {"name": "s", "points": [{"x": 1}, {"x": "2"}]}
    assert refusal(calc, "area", [bad]) == {
        "error": "invalid_params",
        "message": "area(shape): shape.points[1].x must be int, got str",
        "method": "area",
        "path": "shape.points[1].x",
        "expected": "int",
        "got": "str",
    }
    assert refusal(calc, "area", [{"name": "s", "points": [{"y": 1}]}]) == {
        "error": "invalid_params",
        "message": "area(shape): shape.points[0].x is missing (Point requires x)",
        "method": "area",
        "path": "shape.points[0].x",
        "expected": "int",
        "got": "missing",
    }
    assert refusal(calc, "area", [{"name": "s", "points": [], "colour": "red"}]) == {
        "error": "invalid_params",
        "message": "area(shape): shape.colour is not a key of Shape (it takes name, points)",
        "method": "area",
        "path": "shape.colour",
        "expected": "one of name, points",
        "got": "unknown key",
    }
    assert refusal(calc, "area", [[1, 2]])["message"] == "area(shape): shape must be Shape, got list"


def test_typeddict_params_stay_dicts_and_are_checked(calc: MethodDispatcher) -> None:
    assert call(calc, "tag", [{"name": "a", "count": 2}]) == "a:2"
    assert refusal(calc, "tag", [{"name": "a"}]) == {
        "error": "invalid_params",
        "message": "tag(tag): tag.count is missing (Tag requires name, count)",
        "method": "tag",
        "path": "tag.count",
        "expected": "int",
        "got": "missing",
    }
    assert refusal(calc, "tag", {"tag": {"name": 1, "count": 2}})["path"] == "tag.name"


def test_a_parameter_annotated_request_receives_it_and_is_not_sent(calc: MethodDispatcher) -> None:
    assert call(calc, "whoami") == "hi, caller of whoami (id 7)"
    assert call(calc, "whoami", ["hello"]) == "hello, caller of whoami (id 7)"
    assert call(calc, "whoami", {"greeting": "hey"}) == "hey, caller of whoami (id 7)"
    assert refusal(calc, "whoami", {"request": 1})["message"] == (
        "whoami(greeting='hi') got unexpected keyword argument request"
    )
    assert refusal(calc, "whoami", [1]) == {
        "error": "invalid_params",
        "message": "whoami(greeting='hi'): greeting must be str, got int",
        "method": "whoami",
        "path": "greeting",
        "expected": "str",
        "got": "int",
    }


def test_the_request_can_sit_anywhere_and_be_a_union() -> None:
    def middle(a: int, message: Request | Notification, /, b: int = 5, *rest: int, key: str = "k") -> list[Any]:
        return [a, type(message).__name__, b, list(rest), key]

    handler = ParamsHandler("middle", middle)
    assert handler.request_param == "message"
    assert handler(Request(1, "middle", [1])) == [1, "Request", 5, [], "k"]
    assert handler(Notification(1, "middle", [1, 2, 3, 4])) == [1, "Notification", 2, [3, 4], "k"]
    assert handler(Request(1, "middle", [1, 2, 3])) == [1, "Request", 2, [3], "k"]
    for data, message in [
        ({"a": 1, "key": "z"}, "middle(a, /, b=5, *rest, key='k') takes a by position only: send a list"),
        ({"b": 1}, "middle(a, /, b=5, *rest, key='k') missing 1 required argument: a"),
        ([1, 2, "3"], "middle(a, /, b=5, *rest, key='k'): rest[0] must be int, got str"),
    ]:
        with pytest.raises(RequestException) as caught:
            handler(Request(1, "middle", data))
        assert caught.value.data["message"] == message


@pytest.mark.parametrize(
    "data",
    [None, [], [1], [1, 2], [1, 2, 3], ["1", 2], {}, {"a": 1}, {"a": 1, "b": 2}, {"b": "x", "a": 1}, {"c": 1}, 5, "5"],
    ids=repr,
)
def test_the_fast_binding_of_plain_signatures_agrees_with_signature_bind(data: Any) -> None:
    def add(a: int, b: int = 10) -> int:
        return a + b

    fast, slow = ParamsHandler("add", add), ParamsHandler("add", add)
    slow._plain = False
    assert fast._plain

    def outcome(handler: ParamsHandler) -> Any:
        try:
            return handler(Request(1, "add", data))
        except RequestException as exc:
            return exc.data

    assert outcome(fast) == outcome(slow)


def test_the_default_style_is_untouched() -> None:
    class Seed:
        def rpc_add(self, request: Request) -> int:
            return request.data[0] + request.data[1]

        def rpc_data(self, request):  # type: ignore[no-untyped-def]
            return request.data

    seed = Seed()
    dispatcher = MethodDispatcher(seed)
    handler = dispatcher.resolve("add")
    assert handler == seed.rpc_add and not isinstance(handler, ParamsHandler)
    assert call(dispatcher, "add", [2, 3]) == 5
    assert call(dispatcher, "data", [1, 2, 3]) == [1, 2, 3], "no arity check: the request style takes any data"
    assert call(dispatcher, "data", {"c": 1}) == {"c": 1}
    assert dispatcher._cache == {"add": seed.rpc_add, "data": seed.rpc_data}, "the cache holds the bound methods"
    registry = Registry()
    registry.add("data", seed.rpc_data)
    assert registry._methods["data"] == seed.rpc_data
    assert call(registry, "data", [1, 2, 3]) == [1, 2, 3]


def test_unpacking_a_request_style_method_takes_the_data_as_its_one_argument() -> None:
    class Seed:
        def rpc_data(self, request):  # type: ignore[no-untyped-def]
            return request

    dispatcher = MethodDispatcher(Seed(), unpack_params=True)
    assert call(dispatcher, "data", "x") == "x"
    assert refusal(dispatcher, "data", [1, 2])["message"] == "data(request) takes 1 argument, got 2"


def test_registry_with_unpack_params_keeps_the_functions_callable() -> None:
    registry = Registry(unpack_params=True)

    @registry.register("math.mul")
    def multiply(a: float, b: float) -> float:
        """Multiply."""
        return a * b

    assert multiply(2, 3) == 6
    assert call(registry, "math.mul", [2, 3.5]) == 7.0
    assert refusal(registry, "math.mul", [2])["message"] == "math.mul(a, b) missing 1 required argument: b"
    assert refusal(registry, "math.mul", [2, "3"])["message"] == "math.mul(a, b): b must be float, got str"


def test_takes_params_opts_one_function_in() -> None:
    class Mixed:
        def rpc_raw(self, request: Request) -> Any:
            return request.data

        @takes_params
        def rpc_add(self, a: int, b: int) -> int:
            return a + b

        @staticmethod
        @takes_params(validate=False)
        def rpc_loose(a: int) -> Any:
            return a

    dispatcher = MethodDispatcher(Mixed())
    assert call(dispatcher, "raw", [1, 2, 3]) == [1, 2, 3]
    assert call(dispatcher, "add", [1, 2]) == 3
    assert refusal(dispatcher, "add", [1, "2"])["path"] == "b"
    assert call(dispatcher, "loose", ["not an int"]) == "not an int"
    assert refusal(dispatcher, "loose", [1, 2])["message"] == "loose(a) takes 1 argument, got 2"
    assert Mixed().rpc_add(1, 2) == 3, "the decorator returns the method unchanged"

    registry = Registry()

    @registry.register
    @takes_params
    def pair(a: str, b: str = "b") -> str:
        return a + b

    assert call(registry, "pair", ["a"]) == "ab"


def test_validate_false_skips_type_checks_but_not_the_signature() -> None:
    dispatcher = MethodDispatcher(Calc(), unpack_params=True, validate=False)
    assert call(dispatcher, "add", ["a", "b"]) == "ab"
    assert refusal(dispatcher, "add", [1])["message"] == "add(a, b) missing 1 required argument: b"
    registry = Registry(unpack_params=True, validate=False)

    @registry.register
    @takes_params
    def follows(a: int) -> Any:
        return a

    @registry.register
    @takes_params(validate=True)
    def overrides(a: int) -> Any:
        return a

    assert call(registry, "follows", ["x"]) == "x"
    assert refusal(registry, "overrides", ["x"])["path"] == "a"


def test_unusable_annotations_fail_when_the_dispatcher_is_made() -> None:
    class Unsupported:
        def rpc_f(self, values: set[int]) -> None:
            pass

    with pytest.raises(TypeError, match=r"f: parameter values: cannot check values against set\[int\]"):
        MethodDispatcher(Unsupported(), unpack_params=True)
    assert call(MethodDispatcher(Unsupported(), unpack_params=True, validate=False), "f", [[1]]) is None

    def unresolved(value: Undefined) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(TypeError, match="cannot resolve the annotations"):
        Registry(unpack_params=True).add("unresolved", unresolved)
    Registry(unpack_params=True, validate=False).add("unresolved", unresolved)

    def two(a: Request, b: Notification) -> None:
        pass

    with pytest.raises(TypeError, match="only one parameter can take the request, got a, b"):
        ParamsHandler("two", two)


def test_a_request_annotation_only_type_checkers_resolve_still_receives_it_without_validation() -> None:
    def late(note: messages.Notification, value: int) -> Any:
        return [note.method, value]

    with pytest.raises(TypeError, match="cannot resolve"):
        ParamsHandler("late", late)
    handler = ParamsHandler("late", late, validate=False)
    assert handler.request_param == "note"
    assert handler(Notification(1, "late", ["unchecked"])) == ["late", "unchecked"]


def test_describe_reports_the_real_parameters() -> None:
    described = {entry["name"]: entry for entry in call(MethodDispatcher(Calc(), unpack_params=True), DESCRIBE_METHOD)}
    assert sorted(described) == [
        "add", "area", "echo", "kinds", "maybe", "options", "ping", "scale", "sum", "tag", "whoami",
    ]  # fmt: skip
    assert described["add"] == {
        "name": "add",
        "doc": "Return a + b.",
        "signature": "(a: int, b: int) -> int",
        "takes": "params",
        "params": [
            {"name": "a", "kind": "positional_or_keyword", "annotation": "int", "required": True},
            {"name": "b", "kind": "positional_or_keyword", "annotation": "int", "required": True},
        ],
        "returns": "int",
        "docstring": "Return a + b.",
    }
    assert described["scale"] == {
        "name": "scale",
        "doc": "Multiply every value.",
        "signature": "(values: list[float], factor: float = 2.0) -> list[float]",
        "takes": "params",
        "params": [
            {"name": "values", "kind": "positional_or_keyword", "annotation": "list[float]", "required": True},
            {
                "name": "factor",
                "kind": "positional_or_keyword",
                "annotation": "float",
                "required": False,
                "default": 2.0,
            },
        ],
        "returns": "list[float]",
        "docstring": "Multiply every value.\n\nThe values are numbers.",
    }
    assert described["echo"] == {
        "name": "echo",
        "doc": "",
        "signature": "(value)",
        "takes": "params",
        "params": [{"name": "value", "kind": "positional_or_keyword", "annotation": None, "required": True}],
        "returns": None,
        "docstring": "",
    }
    assert described["kinds"]["signature"] == "(a: int, /, b: int, *, c: int = 3) -> list[int]"
    assert [(p["name"], p["kind"]) for p in described["kinds"]["params"]] == [
        ("a", "positional_only"),
        ("b", "positional_or_keyword"),
        ("c", "keyword_only"),
    ]
    assert described["sum"]["params"] == [
        {"name": "numbers", "kind": "var_positional", "annotation": "int", "required": False}
    ]
    assert described["options"]["params"][0]["kind"] == "var_keyword"
    assert described["whoami"]["signature"] == "(greeting: str = 'hi') -> str", "the request is not a parameter sent"
    assert described["whoami"]["params"] == [
        {"name": "greeting", "kind": "positional_or_keyword", "annotation": "str", "required": False, "default": "hi"}
    ]
    assert described["maybe"]["params"][0]["annotation"] == "int | None"
    assert described["maybe"]["params"][0]["default"] is None


def test_describe_says_a_request_style_handler_takes_the_request() -> None:
    class Seed:
        def rpc_add(self, request: Request) -> int:
            """Add two numbers: data is [a, b].

            Returns their sum.
            """
            return 0

    registry = Registry()
    registry.add("untyped", lambda request: None)
    assert call(MethodDispatcher(Seed()), DESCRIBE_METHOD) == [
        {
            "name": "add",
            "doc": "Add two numbers: data is [a, b].",
            "signature": "(request: 'Request') -> 'int'",
            "takes": "request",
            "params": None,
            "returns": "int",
            "docstring": "Add two numbers: data is [a, b].\n\nReturns their sum.",
        }
    ]
    assert call(registry, DESCRIBE_METHOD) == [
        {
            "name": "untyped",
            "doc": "",
            "signature": "(request)",
            "takes": "request",
            "params": None,
            "returns": None,
            "docstring": "",
        }
    ]
