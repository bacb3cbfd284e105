"""The web chat: its Rasa input channel (channel), the live sockets of visitors (hub)
and the page shoppers open (static/)."""
