"""The request an action receives: a dict whose keys read as attributes."""

__all__ = ['Request']


class Request(dict):
    """``request.hello`` is ``request['hello']``. Objects inside are Requests
    too, also inside lists (``request.item.name``, ``request['rows'][0].id``);
    one stored later as a plain dict becomes a Request when read as an
    attribute. A key named like a dict method (``items``, ``copy``) is read
    as ``request['items']``."""

    __slots__ = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        wrap_nested(self)

    def __getattr__(self, name):
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        if type(value) is dict:  # stored later as a plain dict
            value = self[name] = from_dict(value)
        return value

    __setattr__ = dict.__setitem__  # request.server = 'x', at the speed of a dict

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def copy(self):
        """A shallow copy, still a Request."""
        copied = _new(Request)
        copied |= self  # |= costs less than a call of dict.update
        return copied

    def __reduce__(self):
        return Request, (), None, None, iter(self.items())

    def __repr__(self):
        return f'Request({dict.__repr__(self)})'


_new = dict.__new__


def from_dict(value):
    """A Request of a plain dict (from the JSON decoder), objects inside too.
    A flat dict, the common request, is not walked."""
    request = _new(Request)
    request |= value
    for item in value.values():
        kind = type(item)
        if kind is dict or kind is list:
            wrap_nested(request)
            break
    return request


def wrap_nested(root):
    """Make every plain object inside ``root`` a Request, at any depth, in
    copies of the lists that hold them; ``(keys, values, depth)``: the keys
    of every object, the values of every object and list, and the deepest
    nesting (``root`` alone is 1). Iterative: the deepest nesting the JSON
    decoder accepts is no RecursionError."""
    keys = values = 0
    deepest = 1
    pending = [(root, 1)]
    while pending:
        container, depth = pending.pop()
        values += len(container)
        if isinstance(container, dict):
            keys += len(container)
            members = container.items()
        else:
            members = enumerate(container)
        for key, value in members:
            kind = type(value)
            if kind is dict:
                wrapped = _new(Request)
                wrapped |= value
            elif kind is list:
                wrapped = list(value)
            else:
                continue
            container[key] = wrapped
            pending.append((wrapped, depth + 1))
            if depth == deepest:
                deepest = depth + 1
    return keys, values, deepest
