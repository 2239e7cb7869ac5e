"""The decorators and what they are made of: ``llm_function``, ``llm_chat`` and its agent,
the tool loop, compaction, ``tool``, schemas, prompts, docstrings, multimodal content, and the
chat events."""
