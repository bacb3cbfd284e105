"""The staff dashboard's figures, each computed by one function with its definition beside it (no web here)."""
