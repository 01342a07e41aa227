"""Peer: a raw ASGI app echoing the JSON body, for uvicorn with uvloop and httptools.

Usage: bench/.venv/bin/uvicorn asgi_echo:app --app-dir bench/peers --port PORT
The same wire work as apiphant's echo on the fastest common asyncio stack:
what a Starlette or FastAPI app can at best approach.
"""
import orjson

HEADERS = [(b'content-type', b'application/json')]


async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    body = b''
    more_body = True
    while more_body:
        message = await receive()
        body += message.get('body', b'')
        more_body = message.get('more_body', False)
    request = orjson.loads(body or b'{}')
    request['server'] = 'uvicorn'
    response = orjson.dumps(request)
    await send({'type': 'http.response.start', 'status': 200,
                'headers': HEADERS + [(b'content-length', str(len(response)).encode())]})
    await send({'type': 'http.response.body', 'body': response})
