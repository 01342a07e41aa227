"""Lists that scale: cursors, nulls in sort_by, an index read by range, totals asked for."""
