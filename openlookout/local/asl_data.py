"""The data language of the Amazon States Language (JSONPath flavour): paths, intrinsic functions,
Parameters templates and Choice rules. The interpreter (asl.py) runs states with these."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

NOTHING = object()


class StatesError(Exception):
    """A failure with an ASL error name (`States.TaskFailed`, a Lambda's exception class, ...)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


# ---------------------------------------------------------------- JSONPath (the ASL subset)

_PATH_TOKEN = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]|\[\*\]|\.\*")


def _tokens(path: str) -> list[str | int | None]:
    """`$.a.b[0]['c d'][*]` -> ['a', 'b', 0, 'c d', None]; None means every element."""
    if not path.startswith("$"):
        raise StatesError("States.Runtime", f"Invalid JSONPath {path!r}")
    rest, tokens, position = path[1:], [], 0
    while position < len(rest):
        match = _PATH_TOKEN.match(rest, position)
        if match is None:
            raise StatesError("States.Runtime", f"Invalid JSONPath {path!r}")
        name, index, quoted, double = match.groups()
        if name is not None:
            tokens.append(name)
        elif index is not None:
            tokens.append(int(index))
        elif quoted is not None or double is not None:
            tokens.append(quoted if quoted is not None else double)
        else:
            tokens.append(None)
        position = match.end()
    return tokens


def _walk(value: Any, tokens: list[str | int | None]) -> Any:
    for position, token in enumerate(tokens):
        if token is None:
            items = value.values() if isinstance(value, dict) else value
            if not isinstance(items, list | type({}.values())):
                return NOTHING
            results = [_walk(item, tokens[position + 1 :]) for item in items]
            return [r for r in results if r is not NOTHING]
        if isinstance(token, int):
            if not isinstance(value, list) or token >= len(value):
                return NOTHING
            value = value[token]
        else:
            if not isinstance(value, dict) or token not in value:
                return NOTHING
            value = value[token]
    return value


def get_path(data: Any, path: str, context: Any = None) -> Any:
    """Reads a reference path (`$.x`, or `$$.x` for the context object); missing -> States.Runtime."""
    value = lookup(data, path, context)
    if value is NOTHING:
        raise StatesError("States.Runtime", f"The JSONPath {path!r} could not be found in the input")
    return value


def lookup(data: Any, path: str, context: Any = None) -> Any:
    if path.startswith("$$"):
        return _walk(context, _tokens(path[1:]))
    return _walk(data, _tokens(path))


def set_path(data: Any, path: str, value: Any) -> Any:
    """ResultPath: returns `data` with `value` placed at `path` (a copy; `$` replaces the whole)."""
    tokens = _tokens(path)
    if not tokens:
        return value
    result = copy.deepcopy(data) if isinstance(data, dict | list) else {}
    if not isinstance(result, dict):
        raise StatesError("States.Runtime", f"ResultPath {path!r} needs an object input")
    cursor: Any = result
    for token in tokens[:-1]:
        if not isinstance(token, str):
            raise StatesError("States.Runtime", f"Unsupported ResultPath {path!r}")
        if not isinstance(cursor.get(token), dict):
            cursor[token] = {}
        cursor = cursor[token]
    last = tokens[-1]
    if not isinstance(last, str):
        raise StatesError("States.Runtime", f"Unsupported ResultPath {path!r}")
    cursor[last] = value
    return result


# ---------------------------------------------------------------- intrinsic functions


class _IntrinsicParser:
    """Parses `States.Format('{} x', $.a, States.Array(1, 2))` into a value, evaluating as it goes."""

    def __init__(self, text: str, data: Any, context: Any) -> None:
        self.text, self.position, self.data, self.context = text, 0, data, context

    def fail(self, message: str) -> StatesError:
        return StatesError("States.Runtime", f"{message} in intrinsic function {self.text!r}")

    def skip_space(self) -> None:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1

    def parse(self) -> Any:
        value = self.expression()
        self.skip_space()
        if self.position != len(self.text):
            raise self.fail("Unexpected text")
        return value

    def expression(self) -> Any:
        self.skip_space()
        text, start = self.text, self.position
        if text.startswith("States.", start):
            match = re.compile(r"States\.(\w+)\(").match(text, start)
            if not match:
                raise self.fail("Bad function call")
            self.position = match.end()
            args = []
            self.skip_space()
            if text[self.position : self.position + 1] == ")":
                self.position += 1
            else:
                while True:
                    args.append(self.expression())
                    self.skip_space()
                    char = text[self.position : self.position + 1]
                    self.position += 1
                    if char == ")":
                        break
                    if char != ",":
                        raise self.fail("Expected , or )")
            return call_intrinsic(match.group(1), args)
        if text.startswith("'", start):
            out, position = [], start + 1
            while position < len(text):
                char = text[position]
                if char == "\\" and position + 1 < len(text):
                    out.append(text[position + 1])
                    position += 2
                    continue
                if char == "'":
                    self.position = position + 1
                    return "".join(out)
                out.append(char)
                position += 1
            raise self.fail("Unterminated string")
        if text.startswith("$", start):
            match = re.compile(r"\$\$?[^,)\s]*").match(text, start)
            assert match
            self.position = match.end()
            return get_path(self.data, match.group(0), self.context)
        match = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null").match(text, start)
        if match:
            self.position = match.end()
            return json.loads(match.group(0))
        raise self.fail("Unexpected argument")


def _format(template: str, *args: Any) -> str:
    pieces = re.split(r"(?<!\\)\{\}", template)
    if len(pieces) - 1 != len(args):
        raise StatesError("States.Runtime", "States.Format: the number of arguments does not match {}")
    out = pieces[0]
    for arg, piece in zip(args, pieces[1:], strict=True):
        out += (
            json.dumps(arg, separators=(",", ":")) if isinstance(arg, dict | list) else _text(arg)
        ) + piece
    return out.replace("\\{", "{").replace("\\}", "}")


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


INTRINSICS: dict[str, Callable[..., Any]] = {
    "Format": _format,
    "StringToJson": lambda text: json.loads(text),
    "JsonToString": _dumps,
    "Array": lambda *items: list(items),
    "ArrayPartition": lambda items, size: [items[i : i + int(size)] for i in range(0, len(items), int(size))],
    "ArrayContains": lambda items, value: value in items,
    "ArrayRange": lambda start, end, step: list(
        range(int(start), int(end) + (1 if step > 0 else -1), int(step))
    ),
    "ArrayGetItem": lambda items, index: items[int(index)],
    "ArrayLength": lambda items: len(items),
    "ArrayUnique": lambda items: [v for i, v in enumerate(items) if v not in items[:i]],
    "MathAdd": lambda a, b: a + b,
    "MathRandom": lambda start, end, *seed: random.Random(*seed[:1]).randrange(int(start), int(end)),
    "StringSplit": lambda text, separators: [
        p for p in re.split("|".join(map(re.escape, separators)), text) if p
    ],
    "UUID": lambda: str(uuid.uuid4()),
    "Base64Encode": lambda text: base64.b64encode(text.encode()).decode(),
    "Base64Decode": lambda text: base64.b64decode(text).decode(),
    "Hash": lambda data, algorithm: hashlib.new(
        algorithm.replace("-", "").lower(), _text(data).encode()
    ).hexdigest(),
    "JsonMerge": lambda a, b, deep=False: {**a, **b},
}


def call_intrinsic(name: str, args: list[Any]) -> Any:
    function = INTRINSICS.get(name)
    if function is None:
        raise StatesError("States.Runtime", f"Unsupported intrinsic function States.{name}")
    try:
        return function(*args)
    except StatesError:
        raise
    except Exception as exc:
        raise StatesError("States.IntrinsicFailure", f"States.{name}: {exc}") from exc


def evaluate_expression(expression: str, data: Any, context: Any) -> Any:
    if expression.startswith("States."):
        return _IntrinsicParser(expression, data, context).parse()
    return get_path(data, expression, context)


def apply_template(template: Any, data: Any, context: Any) -> Any:
    """Payload templates (Parameters, ItemSelector, ResultSelector): `"key.$": path-or-intrinsic`."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str):
                out[key[:-2]] = evaluate_expression(value, data, context)
            else:
                out[key] = apply_template(value, data, context)
        return out
    if isinstance(template, list):
        return [apply_template(item, data, context) for item in template]
    return template


# ---------------------------------------------------------------- Choice rules

_NUMERIC = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _glob_match(pattern: str, text: str) -> bool:
    parts = re.split(r"(?<!\\)\*", pattern)
    regex = ".*".join(re.escape(p.replace("\\*", "*").replace("\\\\", "\\")) for p in parts)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def choice_matches(rule: dict[str, Any], data: Any, context: Any) -> bool:
    if "And" in rule:
        return all(choice_matches(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(choice_matches(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not choice_matches(rule["Not"], data, context)
    value = lookup(data, rule["Variable"], context)
    for operator, expected in rule.items():
        if operator in ("Variable", "Next"):
            continue
        if operator == "IsPresent":
            return (value is not NOTHING) == expected
        if value is NOTHING:
            if operator.startswith("Is"):
                return False
            raise StatesError(
                "States.Runtime",
                f"Invalid path {rule['Variable']!r}: the choice state's "
                "condition path references an invalid value.",
            )
        if operator.endswith("Path"):
            operator, expected = operator[:-4], get_path(data, expected, context)
        if operator == "IsNull":
            return (value is None) == expected
        if operator == "IsNumeric":
            return _is_number(value) == expected
        if operator == "IsString":
            return isinstance(value, str) == expected
        if operator == "IsBoolean":
            return isinstance(value, bool) == expected
        if operator == "IsTimestamp":
            return (parse_timestamp(value) is not None) == expected
        if operator == "StringMatches":
            return isinstance(value, str) and _glob_match(expected, value)
        if operator == "BooleanEquals":
            return isinstance(value, bool) and value == expected
        for prefix, accept in (
            ("String", lambda v: isinstance(v, str)),
            ("Numeric", _is_number),
            ("Timestamp", lambda v: parse_timestamp(v) is not None),
        ):
            if operator.startswith(prefix) and operator[len(prefix) :] in _NUMERIC:
                if not accept(value) or not accept(expected):
                    return False
                if prefix == "Timestamp":
                    value, expected = parse_timestamp(value), parse_timestamp(expected)
                return bool(_NUMERIC[operator[len(prefix) :]](value, expected))
        raise StatesError("States.Runtime", f"Unsupported Choice operator {operator}")
    raise StatesError("States.Runtime", "A Choice rule has no comparison")


# ---------------------------------------------------------------- the interpreter
