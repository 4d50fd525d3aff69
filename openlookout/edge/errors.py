"""The edge agent's refusals: a gRPC status code and a message naming the problem."""

from __future__ import annotations

import grpc


class AgentError(Exception):
    """A refusal with its gRPC status code and a message naming the problem."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
