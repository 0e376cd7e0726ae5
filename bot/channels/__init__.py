"""Rasa input channels of our own: the ways customers reach the bot besides Rasa's built-in
REST and socket.io channels (credentials.yml names them by their class path)."""
