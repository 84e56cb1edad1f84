"""The chat page at GET /: a person's face on the service, with no build step and no external assets."""
