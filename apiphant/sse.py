"""Server-sent events as a client reads them: the ``text/event-stream``
format parsed by the rules of the HTML standard (§9.2.6), from bytes as
they come, without I/O.

Rules:

1. Lines end with CRLF, LF or CR; a first U+FEFF (BOM) is dropped; bytes
   that are not UTF-8 read as U+FFFD.
2. A line ``field: value`` (one space after the colon dropped) sets
   ``event`` (the type), adds ``data`` (lines joined with LF), sets the
   last event id (``id``, unless it holds NUL) or the reconnection time
   (``retry``, digits only: milliseconds); a line without a colon is a
   field with an empty value; other fields and lines starting with ``:``
   (comments) are ignored.
3. An empty line ends a block: the last event id it set holds from then
   on, whether the block dispatches an event or not (``id: 7`` alone moves
   it); the block dispatches an event when it had data, of type
   ``message`` unless it said another, with the last event id.
4. A block the stream ends in the middle of is dropped.
"""
import codecs
import re

__all__ = ['Parser', 'Block']

_LINE_END = re.compile(r'\r\n|\r|\n')


class Block:
    """What one block (up to an empty line) said: ``last_event_id`` as it
    stands after it, and its event (``event`` type, ``data`` text) or, for
    a block without data, ``event`` None."""

    __slots__ = ('last_event_id', 'event', 'data')

    def __init__(self, last_event_id, event, data):
        self.last_event_id, self.event, self.data = last_event_id, event, data

    def __repr__(self):
        return f'Block({self.last_event_id!r}, {self.event!r}, {self.data!r})'


class Parser:
    """``feed(chunk)`` → the blocks it ends. One per connection; its
    ``last_event_id`` starts as given (that of the connection before) and
    ``retry`` (milliseconds, or None) holds the stream's last ``retry:``."""

    def __init__(self, last_event_id=None):
        self.last_event_id = last_event_id
        self.retry = None
        self._decoder = codecs.getincrementaldecoder('utf-8')('replace')
        self._text = ''
        self._started = self._after_cr = False
        self._event, self._data, self._id = '', [], last_event_id

    def feed(self, chunk):
        """The blocks that ``chunk`` (bytes) ends, in order."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._after_cr and text[0] == '\n':
            text = text[1:]  # the LF of a CRLF cut between two chunks
        if not self._started:
            self._started = True
            text = text.removeprefix('\ufeff')
        text = self._text + text
        self._after_cr = text.endswith('\r')
        blocks, start = [], 0
        for end in _LINE_END.finditer(text):
            block = self._line(text[start:end.start()])
            if block is not None:
                blocks.append(block)
            start = end.end()
        self._text = text[start:]
        return blocks

    def _line(self, line):
        if not line:
            return self._dispatch()
        if line[0] == ':':
            return None
        name, colon, value = line.partition(':')
        if colon and value[:1] == ' ':
            value = value[1:]
        if name == 'data':
            self._data.append(value)
        elif name == 'event':
            self._event = value
        elif name == 'id' and '\0' not in value:
            self._id = value
        elif name == 'retry' and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self):
        self.last_event_id = self._id
        if not self._data:
            self._event = ''
            return Block(self.last_event_id, None, None)
        block = Block(self.last_event_id, self._event or 'message', '\n'.join(self._data))
        self._event, self._data = '', []
        return block
