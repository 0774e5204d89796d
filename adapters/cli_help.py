"""The `--help` formatter of the `progrow` commands: each default stated once, and only where there is one."""

from __future__ import annotations

import argparse

__all__ = ["HelpFormatter"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends `(default: X)` to an option's help unless the help already speaks of its default, the option is
    required, or there is no default worth saying (None, an empty string, off for a flag); the description and
    epilog keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or action.required or not action.option_strings:
            return text
        if default is None or default is argparse.SUPPRESS or default == "" or isinstance(default, bool):
            return text
        return f"{text} (default: %(default)s)"
