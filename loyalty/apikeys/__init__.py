"""API keys of the tills and the web shop. models: tables; service: create, check, revoke."""
