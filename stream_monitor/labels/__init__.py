"""The late-label join: predictions awaiting labels, and the labels joined to them."""
