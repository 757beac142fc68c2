"""Signaling benchmark: Socket.IO fan-out of call requests to home-locality staff."""
