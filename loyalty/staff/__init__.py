"""Staff accounts of the staff web app: marketing, store managers, supervisors."""
