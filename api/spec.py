"""GET /openapi.yaml: the OpenAPI document that describes this API."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response

bp = Blueprint("spec", __name__)
SPEC_PATH = Path(__file__).with_name("openapi.yaml")


@bp.get("/openapi.yaml")
def openapi():
    return Response(SPEC_PATH.read_text(encoding="utf-8"), mimetype="application/yaml")
