"""Relations between generated tables: people, projects (scoped to an owner)
that have a lead, tasks in projects with subtasks and an assignee, comments
on tasks. ``RELATIONS_DECLARATION`` picks the declaration: ``loose`` (plain
int columns, a project's name nullable: tables made before references
existed), ``middle`` (the references, a project's name still nullable) or
``strict`` (the default)."""
