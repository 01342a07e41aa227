"""Names a package imports on first use (PEP 562), so that importing the
package stays cheap and, for ``apiphant`` itself, nothing is imported before
gevent patches."""
import importlib
import sys

__all__ = ['lazy']


def lazy(package, homes, names):
    """``(__getattr__, __dir__)`` for the package ``package``: a name of
    ``homes`` (name: module) is imported from its module at first use and kept
    in the package; ``dir()`` lists ``names``."""
    def __getattr__(name):
        module = homes.get(name)
        if module is None:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(names)
    return __getattr__, __dir__
