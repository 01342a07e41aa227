"""``GET /api/openapi.json`` and ``GET /docs``: the product's OpenAPI
document and Swagger UI over it, both made once at start-up.

Swagger UI (5.x, which reads OpenAPI 3.1) comes from the files of the
``swagger-ui-bundle-v2`` package that pip installed with apiphant, read into
memory here: the page asks for nothing but this server (its
Content-Security-Policy says so to the browser), works offline, and no
third-party file lives in this repository.
"""
import html
import importlib.resources
import re

from apiphant import openapi
from apiphant.routing import Route

__all__ = ['install', 'assets', 'DOCUMENT_PATH', 'PAGE_PATH']

DOCUMENT_PATH = '/api/openapi.json'
PAGE_PATH = '/docs'
PACKAGE = 'swagger-ui-bundle-v2'
_ASSETS = {'swagger-ui.css': 'text/css; charset=utf-8', 'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
           'favicon-32x32.png': 'image/png'}
# The assets change only with the installed package: a day in a browser's cache.
_CACHED = ('Cache-Control', 'public, max-age=86400')
_POLICY = ('Content-Security-Policy', "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_START = f"""window.addEventListener('load', function () {{
  window.ui = SwaggerUIBundle({{
    url: '{DOCUMENT_PATH}', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null,
    displayRequestDuration: true, defaultModelsExpandDepth: 0
  }});
}});
""".encode()
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""


def assets():
    """The directory of Swagger UI 5 inside the installed package; a
    ValueError that says what to install when it is missing."""
    try:
        vendor = importlib.resources.files('swagger_ui_bundle') / 'vendor'
        found = sorted((tuple(map(int, match.groups())), entry) for entry in vendor.iterdir()
                       if (match := re.fullmatch(r'swagger-ui-5\.(\d+)\.(\d+)', entry.name)))
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        found = []
    if not found:
        raise ValueError(f'GET /docs needs Swagger UI 5 from the {PACKAGE} package: '
                         f'pip install "{PACKAGE}>=5.17,<6", or serve with --docs off')
    return found[-1][1]


def install(application, package):
    """Add the document, the page and its assets to the routes of
    ``application`` (a dispatch.Application) serving ``package``. Last: the
    document describes every route already there, and these two."""
    directory = assets()
    files = {name: (directory / name).read_bytes() for name in _ASSETS}
    files['start.js'] = _START
    made = {}

    def openapi_document(request, start_response):
        """The OpenAPI 3.1 description of this API, made at start-up."""
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [made['document']]

    page = _PAGE.format(title=html.escape(f'{package}: API docs')).encode()

    def docs(request, start_response):
        """Swagger UI over the OpenAPI document, served from this server alone."""
        start_response('200 OK', [('Content-Type', 'text/html; charset=utf-8'), _POLICY])
        return [page]

    application.routes[DOCUMENT_PATH] = _route(DOCUMENT_PATH, 'openapi', openapi_document)
    application.routes[PAGE_PATH] = _route(PAGE_PATH, 'docs', docs)
    made['document'] = openapi.encode(openapi.document(application, package))
    for name, body in files.items():  # not described: the page's own files
        path = f'{PAGE_PATH}/{name}'
        application.routes[path] = _route(path, name, _asset(body, _ASSETS.get(name, 'text/javascript; charset=utf-8')))


def _asset(body, media_type):
    def asset(request, start_response):
        start_response('200 OK', [('Content-Type', media_type), _CACHED])
        return [body]
    return asset


def _route(path, name, function):
    return Route(path=path, version='', target='', action=name, function=function, module=__name__,
                 doc=function.__doc__ or '', raw_response=True, methods=('GET',))
