"""Custom Rasa NLU components: a mixed-text tokenizer and a per-message language detector."""
