"""The server's one error type: an HTTP status, a stable code and a human message.

Handlers raise it; the error middleware renders `{"error": {"code", "message"}}`. Codes are listed
in docs/protocol.md (Wire protocol) and never change meaning.
"""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def as_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}
