"""Teaching the bot: the trainers' inbox of what it misunderstood, labelling into the
training data, evaluating a candidate model on the held-out set, and promoting it."""
