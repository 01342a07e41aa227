"""``apiphant users PRODUCT ...`` and ``apiphant keys PRODUCT ...``: the
product's accounts and API keys, managed without the API (the first
administrator needs no open endpoint).

::

    apiphant users PRODUCT add NAME [--role ROLE ...] [--password-stdin]
    apiphant users PRODUCT list
    apiphant users PRODUCT disable NAME | enable NAME
    apiphant users PRODUCT set-password NAME [--password-stdin]
    apiphant users PRODUCT roles NAME [--role ROLE ...]
    apiphant keys PRODUCT add NAME [--role ROLE ...]
    apiphant keys PRODUCT list
    apiphant keys PRODUCT revoke NAME

They use the database the daemon would (``--database-url`` and the other
``database_*`` settings, or their ``APIPHANT_*`` variables), and find the
product's ``Accounts`` or ``ApiKeys`` by importing its routes. A password
is read from the terminal (twice) or, with ``--password-stdin``, from the
first line of the standard input; never from the command line.
"""
import argparse
import getpass
import sys
import time

from apiphant.auth.accounts import normal_login
from apiphant.crud import settings as database_settings
from apiphant.product import ProductError, locate
from apiphant.settings import add_arguments

__all__ = ['main']


def _parser(command):
    parser = argparse.ArgumentParser(prog=f'apiphant {command}', description=(
        "Manage the product's users (Accounts)." if command == 'users' else "Manage the product's API keys (ApiKeys)."))
    parser.add_argument('product', help='the product: a directory (examples/myproduct) or a package name')
    add_arguments(parser, 'apiphant', names=database_settings.NAMES)
    actions = parser.add_subparsers(dest='action', required=True, metavar='ACTION')

    def action(name, help, named=True, roles=False, password=False):
        sub = actions.add_parser(name, help=help, description=help)
        if named:
            sub.add_argument('name', help='the login (a name or an e-mail address)' if command == 'users'
                             else 'the name of the key')
        if roles:
            sub.add_argument('--role', action='append', dest='roles', metavar='ROLE', help='a role (repeat it)')
        if password:
            sub.add_argument('--password-stdin', action='store_true',
                             help='read the password from the first line of the standard input')
            sub.add_argument('--password', help=argparse.SUPPRESS)
        return sub
    if command == 'users':
        action('add', 'add a user', roles=True, password=True)
        action('list', 'list the users', named=False)
        action('disable', 'disable a user: no login, no refresh (its access tokens expire on their own)')
        action('enable', 'enable a disabled user')
        action('set-password', 'set a user\'s password; its refresh tokens are revoked', password=True)
        action('roles', 'show a user\'s roles, or set them to those given with --role', roles=True)
    else:
        action('add', 'add a key with its roles, and print it (it is shown once)', roles=True)
        action('list', 'list the keys (not the keys themselves: they are not kept)', named=False)
        action('revoke', 'revoke a key (in effect within the cache window, 10 s by default)')
    return parser


def main(command, argv):
    args = _parser(command).parse_args(argv)
    database_settings.configure(args)
    try:
        # Asked first: a refusal comes before the product is imported, and a prompt before the database waits.
        args.new_password = _password(args) if getattr(args, 'password_stdin', None) is not None else None
        source = _source(args.product, command)
        if command == 'users':
            return _users(source, args)
        return _keys(source, args)
    except (ProductError, ValueError) as error:
        sys.exit(f'apiphant {command}: {error}')


def _source(product, command):
    from apiphant.auth import identity
    from apiphant.auth.accounts import Accounts
    from apiphant.auth.keys import ApiKeys
    from apiphant.routing import discover
    package = locate(product)
    discover(package)  # imports the api tree, where the sources are declared
    kind = Accounts if command == 'users' else ApiKeys
    for source in identity.sources(package):
        if isinstance(source, kind):
            return source
    raise ProductError(f'{package} declares no {kind.__name__}() in its api tree')


def _password(args, confirm=True):
    if args.password is not None:
        raise ValueError('a password on the command line shows in ps and the shell\'s history: '
                         'type it at the prompt, or give it on the standard input with --password-stdin')
    if args.password_stdin:
        password = sys.stdin.readline().rstrip('\r\n')
    elif sys.stdin.isatty():
        password = getpass.getpass('Password: ')
        if confirm and getpass.getpass('Password again: ') != password:
            raise ValueError('the passwords differ')
    else:
        raise ValueError('no terminal to ask the password on: give it on the standard input with --password-stdin')
    return password


def _checked(source, password):
    try:
        return source.check_password(password)
    except ValueError as error:
        raise ValueError(f'the password {error}') from None


def _users(accounts, args):
    if args.action == 'add':
        password = _checked(accounts, args.new_password)
        user = accounts.add_user(args.name, password, args.roles or ())
        print(f"added user {user} {normal_login(args.name)}")
    elif args.action == 'list':
        rows = [('ID', 'LOGIN', 'ROLES', 'STATE', 'CREATED')] + [
            (str(user['id']), user['login'], ','.join(user['roles']) or '-',
             'disabled' if user['disabled'] else 'enabled', _when(user['created']))
            for user in accounts.list_users()]
        _table(rows)
    elif args.action in ('disable', 'enable'):
        user = accounts.update_user(args.name, disabled=args.action == 'disable')
        print(f'{args.action}d user {user["id"]} {user["login"]}')
    elif args.action == 'set-password':
        password = _checked(accounts, args.new_password)
        user = accounts.update_user(args.name, password=password)
        print(f'set the password of user {user["id"]} {user["login"]}; its refresh tokens are revoked')
    elif args.action == 'roles':
        user = accounts.update_user(args.name, roles=args.roles)
        print(f'{user["login"]}: {",".join(user["roles"]) or "no roles"}')


def _keys(keys, args):
    if args.action == 'add':
        key = keys.add(args.name, args.roles or ())
        print(key)
        print(f'(the key {args.name}: it is shown this once; it is sent as Authorization: Bearer KEY)',
              file=sys.stderr)
    elif args.action == 'list':
        rows = [('NAME', 'ROLES', 'STATE', 'CREATED')] + [
            (key['name'], ','.join(key['roles']) or '-',
             f'revoked {_when(key["revoked"])}' if key['revoked'] is not None else 'active', _when(key['created']))
            for key in keys.list()]
        _table(rows)
    elif args.action == 'revoke':
        if not keys.revoke(args.name):
            raise ValueError(f'there is no active key named {args.name!r}')
        print(f'revoked key {args.name} (callers holding it are refused within {keys.cache_seconds} s)')


def _when(moment):
    return time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(moment)) + 'Z'


def _table(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print('  '.join(f'{cell:<{width}}' for cell, width in zip(row, widths)).rstrip())
