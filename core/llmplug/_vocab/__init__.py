"""The vocabulary every layer speaks: messages, tools and completions (``_types``), a call as
plugins see it (``_call``), errors and their classification, rate limits, usage and prices, and
numbers and URLs made safe. Imports nothing else of llmplug."""
