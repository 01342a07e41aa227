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
    start_response('201 Created', [('Content-Type', 'text/plain')])
    return [b'raw ', request.get('word', 'body').encode()]
