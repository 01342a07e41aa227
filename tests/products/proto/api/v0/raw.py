from apiphant import raw_environ, raw_response


@raw_environ
def create(environ):
    body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
    return {'method': environ['REQUEST_METHOD'], 'content_type': environ.get('CONTENT_TYPE'),
            'body': body.decode('latin-1')}


@raw_environ(methods=['GET', 'POST'])
def read(environ):
    return {'method': environ['REQUEST_METHOD'], 'query': environ.get('QUERY_STRING')}


@raw_response
def update(request, start_response):
    """201 text/plain; or the ``status`` and ``body`` the request names, with no header."""
    if 'status' in request:
        start_response(request['status'], [])
        return [request.get('body', '').encode()]
    start_response('201 Created', [('Content-Type', 'text/plain')])
    return [b'raw ', request.get('word', 'body').encode()]


@raw_response
def delete(request, start_response):
    """A header with a line break: must be a 500, never an injected header."""
    start_response('200 OK', [('X-Injected', 'a\r\nSet-Cookie: evil=1')])
    return [b'no']
