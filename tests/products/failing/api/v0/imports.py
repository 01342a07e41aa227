import no_such_module_anywhere  # noqa: F401 (the import error is the point)
