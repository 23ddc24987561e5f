"""Shell completion scripts, rendered from a command tree.

Plain text work with no dispatch import, so the thin CLI renders the same
scripts from its snapshot without loading Django or the op registry.
"""

from __future__ import annotations

from typing import Any


def sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


BASH_TEMPLATE = """# dispatch completion for bash (`dispatch completion bash`)
_dispatch_complete() {
    local -A commands=(
%(commands)s
    )
    local -A options=(
%(options)s
    )
    local path="dispatch" word next i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        [[ "$word" == -* ]] && continue
        next="$path $word"
        if [[ -n "${options[$next]+set}" ]]; then
            path="$next"
        fi
    done
    local cur="${COMP_WORDS[COMP_CWORD]}"
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${options[$path]}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "${commands[$path]}" -- "$cur"))
    fi
}
complete -o default -F _dispatch_complete dispatch
"""

FISH_TEMPLATE = """# dispatch completion for fish (`dispatch completion fish`)
function __dispatch_path
    set -l known %(paths)s
    set -l path dispatch
    for word in (commandline -opc)[2..-1]
        string match -q -- '-*' $word; and continue
        set -l next "$path $word"
        contains -- $next $known; and set path $next
    end
    echo $path
end
function __dispatch_at
    test (__dispatch_path) = "$argv[1]"
end
complete -c dispatch -f
%(lines)s
"""


def completion_script(shell: str, tree: dict[str, dict[str, Any]]) -> str:
    """The script for `shell`, from a tree as `command_tree()` builds it (the
    thin client passes the one its snapshot carries)."""
    if shell in {"bash", "zsh"}:
        commands = "\n".join(
            f"        [{sh_quote(path)}]={sh_quote(' '.join(sorted(node['commands'])))}"
            for path, node in sorted(tree.items())
        )
        options = "\n".join(
            f"        [{sh_quote(path)}]={sh_quote(' '.join(node['options']))}"
            for path, node in sorted(tree.items())
        )
        script = BASH_TEMPLATE % {"commands": commands, "options": options}
        if shell == "zsh":
            # zsh runs bash completion functions through bashcompinit.
            script = (
                "# dispatch completion for zsh (`dispatch completion zsh`)\n"
                "autoload -U +X bashcompinit && bashcompinit\n"
                + script.split("\n", 1)[1]
            )
        return script
    lines = []
    for path, node in sorted(tree.items()):
        when = f"complete -c dispatch -n {sh_quote('__dispatch_at ' + sh_quote(path))}"
        for word, help_text in sorted(node["commands"].items()):
            lines.append(f"{when} -a {sh_quote(word)} -d {sh_quote(help_text[:60])}")
        for flag in node["options"]:
            lines.append(f"{when} -l {sh_quote(flag[2:])}")
    paths = " ".join(sh_quote(path) for path in sorted(tree))
    return FISH_TEMPLATE % {"paths": paths, "lines": "\n".join(lines)}
