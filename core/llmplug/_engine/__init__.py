"""The call engine: the hook specs and the plugin registry, the attempt loop (pipeline,
attempts, stream events, retry policy, deadlines, transport), whole-call wrappers, and what the
observer hooks are told."""
