"""Raw record values in, validated prediction and label events out; bad records become dead
letters with a reason."""
