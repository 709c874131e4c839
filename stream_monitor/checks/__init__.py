"""One check of one model: the window tests against the model's plan, as CheckResults."""
