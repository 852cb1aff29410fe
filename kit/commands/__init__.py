"""Sub-commands of the ``perfkit`` CLI: one module per command group.

Each module defines ``register(subparsers)`` that adds its parser(s) and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code). Modules import heavy packages
inside their handlers so that ``perfkit --help`` stays fast.
"""
