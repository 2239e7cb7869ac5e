"""What a user calls: ``LLMInterface`` and its OpenAI wires, model groups, and provider.json's
loading into them."""
