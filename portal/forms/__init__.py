"""Portal forms, one module per role."""
