"""The default plugins, shipped inside llmplug but loaded like anyone else's.

Each subpackage is an ordinary plugin declared in llmplug's own ``[project.entry-points.llmplug]``
(``openai-chat``, ``openai-responses``, ``key-strategies``, ``token-bucket``): the registry finds
them through that group, registers them before third-party plugins, and their hooks are
``trylast``, so an installed plugin can answer for the same name first. The core never imports
them by name, and nothing here is imported by ``import llmplug``. They live under ``llmplug``
rather than as top-level modules so that no other distribution can install a module of the same
name over them. Private: build an explicit registry with ``llmplug.default_plugins()``.
"""
