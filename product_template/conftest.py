"""Without the apiphant that wrote this product (1.0 or later, whose pytest
plugin reads ``apiphant_product`` in pytest.ini), the tests stop with one
sentence that says what to install, instead of pytest's INTERNALERROR on an
unknown ini option: pytest configures this file before it checks the ini."""
import importlib.metadata

import pytest


def apiphant_version():
    """The installed apiphant's version, or None."""
    try:
        return importlib.metadata.version('apiphant')
    except importlib.metadata.PackageNotFoundError:
        return None


def pytest_configure(config):
    version = apiphant_version()
    major = (version or '0').split('.')[0]
    if not major.isdigit() or int(major) < 1:
        found = f'apiphant {version} is installed' if version else 'apiphant is not installed'
        raise pytest.UsageError(
            f'{found}, and these tests need the apiphant that wrote this product, 1.0 or later '
            f'(PyPI\'s "apiphant" is an unrelated 0.2 release): install the wheel of deploy/wheels/, '
            f'e.g. .venv/bin/pip install deploy/wheels/apiphant-*.whl')
