"""The faces: HTTP routes and their wire protocols, each a package or module of its own that parses
requests into the chat service's input and frames its events back out. Only the app imports them."""
