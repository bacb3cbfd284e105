"""Custom actions: slots in, one call of the loyalty core, a response out.

The rasa-sdk executor imports every module of this package (one per feature).
"""
