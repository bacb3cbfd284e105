"""Messages the assistant did not understand well, kept (masked) for staff to review and learn from."""
