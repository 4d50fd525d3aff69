"""The template's Lambda functions, imported and called in this process (no containers here)."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from openlookout.local.template import Function

log = logging.getLogger("serve.lambdas")

Handler = Callable[[Any, Any], Any]


class FunctionNotFound(KeyError):
    pass


class LambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and Powertools read."""

    def __init__(self, function: Function, region: str, account_id: str) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = function.logical_id
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function.logical_id}"
        self.memory_limit_in_mb = 512
        self.log_group_name = f"/aws/lambda/{function.logical_id}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LoadedFunction:
    spec: Function
    handler: Handler
    module: ModuleType


def _module_name(logical_id: str) -> str:
    # A unique module name per function: every handler file is called app.py.
    return "openlookout_local_fn_" + re.sub(r"\W", "_", logical_id)


def load_handler(function: Function) -> tuple[Handler, ModuleType]:
    module_path, _, attribute = function.handler.rpartition(".")
    if not module_path:
        raise ValueError(f"{function.logical_id}: Handler {function.handler!r} is not <module>.<function>")
    file = function.code_uri / (module_path.replace(".", "/") + ".py")
    if not file.exists():
        file = function.code_uri / module_path.replace(".", "/") / "__init__.py"
    name = _module_name(function.logical_id)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{function.logical_id}: cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # The CodeUri folder is on sys.path in Lambda, for sibling modules of the handler file.
    code_dir = str(function.code_uri)
    added = code_dir not in sys.path
    if added:
        sys.path.append(code_dir)
    try:
        spec.loader.exec_module(module)
    finally:
        if added:
            sys.path.remove(code_dir)
    handler = getattr(module, attribute)
    return handler, module


class FunctionError(Exception):
    """An unhandled exception in a handler, in the shape the Lambda service reports it."""

    def __init__(self, error_type: str, message: str, stack: list[str]) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack

    def payload(self) -> dict[str, Any]:
        return {"errorMessage": self.message, "errorType": self.error_type, "stackTrace": self.stack}


class Functions:
    def __init__(self, functions: Iterable[Function], region: str, account_id: str) -> None:
        self.region = region
        self.account_id = account_id
        self._specs = {f.logical_id: f for f in functions}
        self._loaded: dict[str, LoadedFunction] = {}
        self._import_lock = threading.RLock()

    def load_all(self) -> list[str]:
        """Imports every handler now; returns those that failed (they retry at their first call)."""
        failed = []
        for logical_id in self._specs:
            try:
                self.get(logical_id)
            except Exception as error:
                # One broken or dependency-hungry handler must not keep the others from serving.
                log.error("%s: cannot import %s: %s", logical_id, self._specs[logical_id].handler, error)
                failed.append(logical_id)
        return failed

    def names(self) -> list[str]:
        return list(self._specs)

    def specs(self) -> list[Function]:
        return list(self._specs.values())

    def get(self, name_or_arn: str) -> LoadedFunction:
        name = name_or_arn
        if name.startswith("arn:"):
            # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
            parts = name.split(":")
            name = parts[6] if len(parts) > 6 else parts[-1]
        elif ":" in name:
            name = name.split(":", 1)[0]  # name:qualifier
        if name not in self._specs:
            raise FunctionNotFound(name_or_arn)
        loaded = self._loaded.get(name)
        if loaded is None:
            with self._import_lock:  # two first requests must not import one module twice
                if name not in self._loaded:
                    handler, module = load_handler(self._specs[name])
                    self._loaded[name] = LoadedFunction(self._specs[name], handler, module)
                loaded = self._loaded[name]
        return loaded

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Calls the handler; an exception comes back as FunctionError (errorType = class name)."""
        try:
            loaded = self.get(name_or_arn)
        except FunctionNotFound:
            raise
        except Exception as exc:
            message = f"Unable to import module for {name_or_arn}: {exc}"
            raise FunctionError(
                "Runtime.ImportModuleError", message, traceback.format_exception(exc)
            ) from exc
        context = LambdaContext(loaded.spec, self.region, self.account_id)
        try:
            return loaded.handler(event, context)
        except Exception as exc:
            stack = traceback.format_exception(exc)
            log.warning("%s raised %s: %s", loaded.spec.logical_id, type(exc).__name__, exc)
            raise FunctionError(type(exc).__name__, str(exc), stack) from exc
