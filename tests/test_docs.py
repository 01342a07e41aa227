"""The README keeps up with the code: every setting, error class and command."""
import re

import docutils.core
import pytest

from apiphant import errors
from apiphant.settings import SETTINGS
from conftest import ROOT

README = (ROOT / 'README.rst').read_text(encoding='utf-8')


def quick_start_commands():
    section = re.search(r'^Quick start\n-+\n(.*?)(?=^\S[^\n]*\n[-=~]{3,}\n)', README, re.S | re.M)[1]
    return [line.strip()[2:] for line in section.splitlines() if line.strip().startswith('$ ')]


def test_readme_renders_without_warnings():
    docutils.core.publish_string(README, writer='null',
                                 settings_overrides={'halt_level': 2, 'report_level': 2})


@pytest.mark.parametrize('setting', SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_documented(setting):
    assert f'``{setting.flag}``' in README
    assert f'``{setting.env}``' in README
    if setting.default:  # an empty one is written (none)
        assert f'``{setting.default}``' in README


@pytest.mark.parametrize('name', [name for name in errors.__all__ if name[0].isupper()])
def test_every_error_class_is_documented(name):
    assert re.search(rf'^``{name}(\(|``)', README, re.M), f'{name} is missing from the errors table'


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert '127.0.0.1:8001' in commands[0] and 'examples/myproduct' in commands[0]
    assert commands[1] in (ROOT / '.ci' / 'run').read_text()
