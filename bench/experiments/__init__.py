"""One-question experiments behind findings in docs/results/; each docstring's first line names the question
and the page with its answer."""
