"""One module per group of endpoints; each resource gets the shared ``Service``."""
