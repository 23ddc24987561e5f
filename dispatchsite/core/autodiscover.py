"""Finding what the installed apps contribute, so the kernel lists none of them.

`discover("ops")` imports `<app>.ops` for every installed app, and when that is
a package, every module in it: an app registers its ops, commands or beat
entries by having such a module, as the admin finds `<app>.admin`.
"""

from __future__ import annotations

import importlib
import pkgutil

from django.apps import apps

# Module names already discovered: the registries ask on every op call, and
# listing the packages' folders again each time would put file-system work
# on the request path.
_discovered: set[str] = set()


def discover(module_name: str) -> None:
    """Import `<app>.<module_name>` (and its submodules) for every app, once."""
    if module_name in _discovered:
        return
    for config in apps.get_app_configs():
        name = f"{config.name}.{module_name}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            importlib.import_module(f"{name}.{info.name}")
    _discovered.add(module_name)
