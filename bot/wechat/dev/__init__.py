"""Development tools for the WeChat channel: a local fake of WeChat's API (fake_server),
a player of WeChat's side of callbacks (simulate, play) and a helper that serves a
Sanic app on a loopback port (local_server). None of them runs in production."""
