"""Custom NLU components for Chinese (registered with Rasa's default recipe)."""
