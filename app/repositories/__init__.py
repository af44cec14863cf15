"""All SQL lives here: one repository per aggregate, each over a session."""
