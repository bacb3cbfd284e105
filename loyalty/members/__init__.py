"""Members: the member record and its row lock, phone numbers, channel identities, marketing consent.

models: tables (members, channel identities, segment profiles); service: operations; lock: the row lock."""
