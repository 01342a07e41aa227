import datetime
import decimal
import uuid


def read(request):
    return {
        'datetime': datetime.datetime(2026, 11, 22, 3, 4, 5, tzinfo=datetime.timezone.utc),
        'date': datetime.date(2026, 11, 22),
        'decimal': decimal.Decimal('12.50'),
        'uuid': uuid.UUID('12345678-1234-5678-1234-567812345678'),
        'set': {3, 1, 2},
        'tuple': (1, 'two'),
        'int_keys': {1: 'one'},
    }


def create(request):
    return {'too_big': 2 ** 70}


def update(request):
    return {'nan_decimal': decimal.Decimal('NaN')}
