"""Stores and products: the catalogue every other domain points at.

models: tables; service: look-ups."""
