"""The Request an action receives: a dict with attribute access, whose
copies, pickles and nested objects keep the type."""
import copy
import pickle

import pytest

from apiphant.codec import decode
from apiphant.request import Request


def test_attribute_get() -> None:
    assert Request(hello='world').hello == 'world'


def test_attribute_set_is_an_item() -> None:
    request = Request()
    request.hello = 'world'
    assert request == {'hello': 'world'}
    assert request['hello'] == 'world'


def test_attribute_delete() -> None:
    request = Request(a=1, b=2)
    del request.a
    assert request == {'b': 2}


def test_item_set_reads_as_attribute() -> None:
    request = Request()
    request['x'] = 5
    assert request.x == 5


def test_missing_attribute_is_attribute_error() -> None:
    with pytest.raises(AttributeError) as caught:
        Request(a=1).b  # noqa: B018
    assert not isinstance(caught.value, KeyError)
    assert 'b' in str(caught.value)


def test_hasattr_of_missing_key_is_false() -> None:
    assert hasattr(Request(a=1), 'a')
    assert not hasattr(Request(a=1), 'b')
    assert getattr(Request(), 'b', 'dflt') == 'dflt'


def test_delete_missing_attribute_is_attribute_error() -> None:
    with pytest.raises(AttributeError):
        del Request().missing


def test_missing_key_is_key_error() -> None:
    with pytest.raises(KeyError):
        Request()['missing']  # noqa: B018


def test_keys_named_like_dict_methods_read_by_item() -> None:
    request = Request(items=[1], copy=2)
    assert request['items'] == [1]
    assert request['copy'] == 2
    assert callable(request.items) and callable(request.copy)
    assert type(request.copy()) is Request


def test_request_has_no_instance_dict() -> None:
    with pytest.raises(AttributeError):
        Request().__dict__  # noqa: B018


def test_request_is_a_dict() -> None:
    assert isinstance(Request(), dict)


def test_request_from_kwargs_and_pairs() -> None:
    assert Request([('a', {'b': 1})], c={'d': 2}).a.b == 1
    assert Request([('a', {'b': 1})], c={'d': 2}).c.d == 2


def test_copy_keeps_the_type() -> None:
    copied = Request(a=1).copy()
    assert type(copied) is Request
    assert copied == {'a': 1}


def test_copy_is_a_new_request() -> None:
    original = Request(a=1)
    copied = original.copy()
    copied.b = 2
    assert original == {'a': 1}


def test_copy_is_shallow_for_nested_objects() -> None:
    original = decode(b'{"item": {"name": "x"}}')
    assert original.copy().item is original.item


def test_copy_is_shallow_for_lists() -> None:
    original = decode(b'{"tags": ["a"], "items": [{"id": 1}]}')
    copied = original.copy()
    assert copied.tags is original.tags
    assert copied['items'] is original['items']


def test_copy_module_copy_is_shallow() -> None:
    original = decode(b'{"tags": ["a"], "item": {"id": 1}}')
    copied = copy.copy(original)
    assert type(copied) is Request
    assert copied.item is original.item
    assert copied.tags is original.tags


def test_deepcopy_keeps_the_types() -> None:
    original = decode(b'{"tags": [{"a": 1}], "item": {"id": 1}}')
    copied = copy.deepcopy(original)
    assert copied == original
    assert copied.item is not original.item
    assert type(copied.item) is Request
    assert type(copied.tags[0]) is Request


@pytest.mark.parametrize('protocol', range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(protocol: int) -> None:
    original = decode(b'{"a": {"b": [{"c": 1}]}, "n": null, "s": "x"}')
    loaded = pickle.loads(pickle.dumps(original, protocol))
    assert loaded == original
    assert type(loaded) is Request
    assert type(loaded.a) is Request
    assert loaded.a.b[0].c == 1


def test_repr() -> None:
    assert repr(Request()) == 'Request({})'
    assert repr(Request(a=1)) == "Request({'a': 1})"
    assert repr(Request(a={'b': 'c'})) == "Request({'a': Request({'b': 'c'})})"


def test_equal_to_a_dict() -> None:
    assert Request(a={'b': [1]}) == {'a': {'b': [1]}}
