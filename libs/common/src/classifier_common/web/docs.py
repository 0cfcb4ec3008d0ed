"""The API docs page, served from the package."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

SWAGGER_DIR = Path(__file__).parent.parent / "swagger"


def offline_docs(app: FastAPI, docs_url: str, openapi_url: str, title: str) -> None:
    """Swagger UI served from the package (swagger-ui-dist, vendored): FastAPI's default page
    loads it from a CDN, which fails offline and behind firewalls."""
    assets = f"{docs_url}/assets"
    app.mount(assets, StaticFiles(directory=SWAGGER_DIR), name=f"{docs_url}-assets")

    @app.get(docs_url, include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API docs",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        )
