"""The book's analysis (layer 2: imports the optimizer and experiment layers): statistics and verdicts,
run records as frames, claims, tables, plots, and the chapters' measurements."""
