"""Thin Rasa SDK actions: read slots, call a bot/ service, choose a reply."""

from bot.masking import install_log_masking

install_log_masking()
