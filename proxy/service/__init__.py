"""The chat service (framing-neutral) and how it builds prompts: template, tokenizer, context fitting."""
