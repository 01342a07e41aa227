"""Helper of idle.py: open N keep-alive connections, each answered once, then hold them idle.

Usage: python hold.py PORT N    (idle.py runs it pinned to core 1)
Each connection sends one echo POST and reads its whole answer; connects go
out in batches of non-blocking sockets so the server's accept queue never
overflows. Then one line on stdout, `held H failed F seconds S`, and the
connections stay idle until a line (or EOF) on stdin; the answer to that is
`dropped D`: how many the server closed (or wrote on) meanwhile. Then all close.
"""
import resource
import selectors
import socket
import sys
import time

BATCH = 500  # below apiphant's listen backlog (2048) and the kernel's somaxconn
BATCH_TIMEOUT = 30  # seconds for a batch to be answered
REQUEST = (b'POST /api/v0/echo/read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
           b'Content-Length: 18\r\n\r\n{"hello": "world"}')


def answered(received):
    """True once `received` holds a whole response (head and Content-Length bytes of body)."""
    head, blank, body = received.partition(b'\r\n\r\n')
    if not blank:
        return False
    for line in head.split(b'\r\n')[1:]:
        name, _, value = line.partition(b':')
        if name.strip().lower() == b'content-length':
            return len(body) >= int(value)
    return True


def open_batch(port, count, selector):
    """Open `count` connections, one request each; the sockets answered 200, and how many failed."""
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(('127.0.0.1', port))
        selector.register(sock, selectors.EVENT_WRITE, b'')
    held, failed = [], 0
    deadline = time.monotonic() + BATCH_TIMEOUT
    while selector.get_map() and time.monotonic() < deadline:
        for key, events in selector.select(timeout=1):
            sock, received = key.fileobj, key.data
            try:
                if events & selectors.EVENT_WRITE:
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error:
                        raise OSError(error, 'connect')
                    sock.send(REQUEST)  # a fresh socket takes 130 bytes whole
                    selector.modify(sock, selectors.EVENT_READ, b'')
                    continue
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError('closed before the answer')
                received += chunk
                if not answered(received):
                    selector.modify(sock, selectors.EVENT_READ, received)
                    continue
                selector.unregister(sock)
                if received.startswith(b'HTTP/1.1 200 '):
                    held.append(sock)
                else:
                    failed += 1
                    sock.close()
            except OSError:
                selector.unregister(sock)
                sock.close()
                failed += 1
    for key in list(selector.get_map().values()):  # unanswered within the deadline
        selector.unregister(key.fileobj)
        key.fileobj.close()
        failed += 1
    return held, failed


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.monotonic()
    held, failed = [], 0
    with selectors.DefaultSelector() as selector:
        while len(held) + failed < count:
            batch, lost = open_batch(port, min(BATCH, count - len(held) - failed), selector)
            held += batch
            failed += lost
        print(f'held {len(held)} failed {failed} seconds {time.monotonic() - started:.2f}', flush=True)
        sys.stdin.readline()
        # Idle sockets have nothing to read: a readable one was closed (or written on) by the server.
        for sock in held:
            selector.register(sock, selectors.EVENT_READ)
        dropped = len(selector.select(timeout=0))
        print(f'dropped {dropped}', flush=True)
    for sock in held:
        sock.close()


if __name__ == '__main__':
    main()
