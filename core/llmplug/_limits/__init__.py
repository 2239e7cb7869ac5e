"""Keys and limits: the key pool and its health, the token bucket, rate-limit backends found by
entry point, and tokenizer-free token estimates."""
