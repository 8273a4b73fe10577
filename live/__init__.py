"""Live rooms: the WebSocket gateway, room state, the coalesced ticker and fan-out."""
