"""The power company's public website (门户网站) with the chat widget: a page in Chinese,
the rasa-webchat widget vendored from npm (static/vendor/) talking to Rasa's socket.io
channel, and a demo sign-in to the online service hall (网上营业厅) whose customer the
widget vouches for in the message metadata (bot/known_customer.py). docs/website.md."""
