"""Segments and lifecycle (用户画像). rfm: pure scoring rules; job: recompute from the database; models: tables."""
