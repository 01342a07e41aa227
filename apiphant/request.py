"""The request an action receives: a dict whose keys read as attributes."""

__all__ = ['Request']


class Request(dict):
    """``request.hello`` is ``request['hello']``; nested objects are Requests
    too, also inside lists. A key named like a dict method (``items``,
    ``copy``) is read as ``request['items']``."""

    __slots__ = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            kind = type(value)
            if kind is dict or kind is list:
                self[key] = _wrap(value)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def copy(self):
        return Request(self)

    def __reduce__(self):
        return Request, (dict(self),)

    def __repr__(self):
        return f'Request({dict.__repr__(self)})'


def _wrap(value):
    kind = type(value)
    if kind is dict:
        return Request(value)
    if kind is list:
        return [_wrap(item) for item in value]
    return value
