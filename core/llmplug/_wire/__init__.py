"""What every wire format shares: the SSE and NDJSON decoders, the ``StreamParser`` protocol and
its framings, and ``PerLoop``. Public to wire plugins through :mod:`llmplug.wire`."""
