"""Custom Rasa NLU components: an input length guard, a mixed-text tokenizer and a language detector."""
