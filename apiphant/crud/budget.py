"""How much text one answer of ``list``, ``group`` or ``sample`` may hold.

A page is ``page_size`` rows; a row holds its text columns. When the
columns' ``max_length`` (checked on every write) bound a full page within
the table's ``max_answer_text``, nothing is counted. Otherwise the text of
the rows is counted once fetched; and when a column has no ``max_length``,
the database first answers the length of each row of the page (no text
crosses), so that an over-long page is refused before it is read.
"""
import sqlalchemy as sa

from apiphant.errors import Invalid

__all__ = ['Budget']


class Budget:
    """The budget of ``limit`` characters for rows of ``columns``
    (``[(sql column, Column)]``, text ones), at most ``page_size`` of them."""

    def __init__(self, limit, columns, page_size):
        lengths = [column.max_length for _, column in columns]
        self.limit = limit
        self.fits = None not in lengths and page_size * sum(lengths) <= limit
        self.unbounded = None in lengths
        # The characters of a row, computed by the database.
        self.size = sum((sa.func.coalesce(sa.func.length(sql), 0) for sql, _ in columns), sa.literal(0))

    def check(self, sizes):
        """Invalid on ``page_size`` once the rows of ``sizes`` (characters
        of each row, in order) pass the limit."""
        total = 0
        for number, size in enumerate(sizes):
            total += size
            if total > self.limit:
                raise Invalid('page_size', f'the answer would hold more than {self.limit} characters of text: '
                              + (f'at most {number} of these rows fit' if number else
                                 'one row holds more; read it by id'))

    def check_rows(self, rows, places):
        """``check`` of fetched ``rows``, whose text is at ``places``; nothing
        to count when the declared lengths fit."""
        if not self.fits:
            self.check(sum(len(row[place]) for place in places if row[place] is not None) for row in rows)
