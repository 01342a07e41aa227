"""The declaration of ``things`` as CRUD_DECLARATION says, for the tests of
tables that change between two starts."""
import os

from apiphant.crud import Column, Table

DECLARATIONS = {
    'first': dict(title=Column(str, required=True), size=Column(int)),
    'added': dict(title=Column(str, required=True), size=Column(int, hidden=True),  # kept, hidden
                  flag=Column(bool, default=True), label=Column(str, default="it's"),
                  note=Column(str), at=Column('datetime', default='now'), score=Column(float, default=0.5)),
    'required': dict(title=Column(str, required=True), size=Column(int), extra=Column(str, required=True)),
    'lossy': dict(title=Column(str, required=True), size=Column(str)),  # flag... dropped, size retyped
}

things = Table('things', **DECLARATIONS[os.environ.get('CRUD_DECLARATION', 'first')])
