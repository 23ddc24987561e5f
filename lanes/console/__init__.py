"""The admin as a console: forms and views that drive lanes through ops.

Every write here is `dispatchsite.core.registry.execute` with an admin
Origin, exactly like the CLI and REST, so authority, audit (under
`admin:<username>`) and destroy confirmation apply the same way.
"""
