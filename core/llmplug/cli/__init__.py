"""The ``llmplug`` command's subcommands, each in a module of its own, imported only when run."""
