"""Export the HTTP API's OpenAPI document: ``python -m functions.openapi`` writes
``functions/openapi.json`` from the three resolvers (a test keeps the file current).

Powertools documents validation failures as 422; Streamlet answers 400 with REST Proxy's
error body, so the export rewrites those responses, adds the SigV4 scheme and the
binary bodies of the native batch routes.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from .api import apps, openapi

PATH = Path(__file__).with_name("openapi.json")
SIGV4 = {"type": "apiKey", "name": "Authorization", "in": "header",
         "x-amazon-apigateway-authtype": "awsSigv4"}
ERROR_BODY = {"type": "object", "required": ["error_code", "message"], "properties": {
    "error_code": {"type": "integer", "example": 40401},
    "message": {"type": "string"},
    "code": {"type": "string", "description": "Streamlet's stable error name."}}}
ERRORS = {"400": "Invalid request (error_code 40002)",
          "403": "Not signed, or wrongly signed (SigV4 for execute-api)",
          "404": "Unknown topic (40401), partition (40402) or route",
          "413": "Body or record too large (41301)"}
BATCHES = "/v1/topics/{topic}/partitions/{partition}/batches"
BINARY = {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                             "format": "binary"}}}}


def _error_responses(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    responses.pop("500", None)
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for status, description in ERRORS.items():
        responses.setdefault(status, {"description": description, **ref})


def _binary_bodies(paths: dict[str, Any]) -> None:
    batches = paths.get(BATCHES, {})
    if "post" in batches:
        batches["post"]["requestBody"] = {"required": True, **BINARY,
                                          "description": "One Kafka RecordBatch v2."}
    if "get" in batches:
        batches["get"]["responses"]["200"] = {
            **BINARY, "description": "Record batches back to back; watermarks in the "
            "X-Streamlet-High-Watermark and X-Streamlet-Log-Start-Offset headers."}


def document() -> dict[str, Any]:
    """One OpenAPI 3 document with every route of the three handlers, SigV4 on each."""
    merged: dict[str, Any] = {}
    for name, (app, _) in apps().items():
        part = copy.deepcopy(openapi(app))
        merged = merged or {**part, "paths": {}, "components": {"schemas": {}}}
        for path, item in part.get("paths", {}).items():
            for operation in item.values():
                operation["x-streamlet-handler"] = f"functions.api.{name}"
                _error_responses(operation)
            merged["paths"].setdefault(path, {}).update(item)
        merged["components"]["schemas"].update(part.get("components", {}).get("schemas", {}))
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        merged["components"]["schemas"].pop(unused, None)
    merged["components"]["schemas"]["Error"] = ERROR_BODY
    merged["components"]["securitySchemes"] = {"sigv4": SIGV4}
    merged["security"] = [{"sigv4": []}]
    _binary_bodies(merged["paths"])
    return merged


def render() -> str:
    """The document as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    PATH.write_text(render())
    print(f"wrote {PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
