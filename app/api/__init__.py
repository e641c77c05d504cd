"""The HTTP API: `create_app(settings)`, routers per resource over the one service (app.service).

Run it with `triage serve`, or `uvicorn app.api:create_app --factory`.
"""

from app.api.app import create_app

__all__ = ["create_app"]
