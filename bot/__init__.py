"""Everything the conversation needs around Rasa: channels, web chat, console, NLU parts."""
