"""The web side: Tornado workers that serve the page, the stream and the API from what a
node publishes (they import nothing from the node but its wire format, node/wire.py)."""
