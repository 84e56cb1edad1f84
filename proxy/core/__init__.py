"""What every layer of the proxy shares: the chat vocabulary and the one error tree. No I/O."""
