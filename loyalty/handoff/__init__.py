"""Human takeover (转人工): the agents, the queue and its assignments, kept in the database.

``models`` holds the tables, ``service`` the queue operations, ``auth`` the
agents' accounts, ``hours`` the service hours. Nothing here imports Rasa: the
console (bot/console) and the assistant's actions call these functions.
"""
