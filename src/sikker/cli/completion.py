"""``sikker completion SHELL``: the shell completion script, from click's own mechanism."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from sikker.cli.options import json_option
from sikker.cli.output import emit_json

SHELLS = ["bash", "zsh", "fish"]


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@json_option()
def completion(shell: str, as_json: bool) -> None:
    """Print the completion script for SHELL; load it from your shell's start-up file.

    \b
      bash (~/.bashrc):  eval "$(sikker completion bash)"
      zsh (~/.zshrc):    eval "$(sikker completion zsh)"
      fish:              sikker completion fish > ~/.config/fish/completions/sikker.fish
    """
    completer = get_completion_class(shell)
    if completer is None:  # not for a shell in SHELLS
        raise click.UsageError(f"no completion for {shell}")
    root = click.get_current_context().find_root().command
    script = completer(root, {}, "sikker", "_SIKKER_COMPLETE").source()
    if as_json:
        emit_json({"shell": shell, "script": script})
    else:
        click.echo(script)
