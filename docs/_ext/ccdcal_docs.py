"""Directives for the ginga_ccdcal docs: command-line help and optional files.

``.. ccdcal-help:: [COMMAND]``
    The ``--help`` text of ``ginga-ccdcal`` (or of one sub-command), taken
    from `ginga_ccdcal.cli.build_parser` when the docs are built, so the
    page can never disagree with the program.
``.. include-if-exists:: PATH``
    The file as a literal block if it exists, nothing otherwise (used for
    the measured benchmark table, which only exists once someone ran the
    benchmarks).
"""

import os

from docutils import nodes
from docutils.parsers.rst import Directive, directives


def _help_text(command=None):
    from ginga_ccdcal.cli import build_parser
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "78"  # argparse wraps to the terminal: make it fixed
    try:
        parser = build_parser()
        if command:
            sub = next(a for a in parser._actions if hasattr(a, "choices")
                       and isinstance(a.choices, dict) and command in a.choices)
            parser = sub.choices[command]
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def subcommands():
    """Names of the ``ginga-ccdcal`` sub-commands, in the parser's order."""
    from ginga_ccdcal.cli import build_parser
    parser = build_parser()
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            return list(action.choices)
    return []


class CcdcalHelp(Directive):
    optional_arguments = 1
    has_content = False

    def run(self):
        command = self.arguments[0] if self.arguments else None
        if command is not None and command not in subcommands():
            raise self.error(f"ginga-ccdcal has no command {command!r}")
        text = _help_text(command).rstrip()
        node = nodes.literal_block(text, text)
        node["language"] = "text"
        return [node]


class IncludeIfExists(Directive):
    required_arguments = 1
    option_spec = {"language": directives.unchanged}

    def run(self):
        env = self.state.document.settings.env
        rel, path = env.relfn2path(self.arguments[0])
        if not os.path.exists(path):
            return []
        env.note_dependency(rel)
        with open(path, encoding="utf-8") as stream:
            text = stream.read().rstrip()
        node = nodes.literal_block(text, text)
        node["language"] = self.options.get("language", "text")
        return [node]


def setup(app):
    app.add_directive("ccdcal-help", CcdcalHelp)
    app.add_directive("include-if-exists", IncludeIfExists)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
