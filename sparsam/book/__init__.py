"""The book's analysis (layer 2: imports the optimizer and experiment layers): statistics and verdicts,
run records as frames, claims, tables, figures, and the chapters' measurements."""
