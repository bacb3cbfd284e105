"""Members: joining, consent, channel identities, opting out and closing. models: tables; service: operations; lock: the member row lock."""
