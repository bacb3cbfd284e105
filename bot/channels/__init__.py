"""Rasa input channels (Sanic blueprints) for WeChat and the web chat."""
