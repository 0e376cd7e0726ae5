"""The WeChat official account (微信公众号: the company's account that customers follow
inside WeChat and write to). The Rasa channel (bot/channels/wechat.py) only speaks HTTP;
everything else is here, one module per part:

  config.py     the channel's settings (credentials.yml and the environment)
  envelope.py   what arrives: signature, timestamp, size, safe XML, AES (安全模式)
  messages.py   what each kind of message or event means, and the texts sent back
  inbox.py      each message processed once (bot/dedup.py keeps the record): the answer in
                time (passive reply) or pushed later
  api.py        the customer-service message API (客服消息) and its access token
  delivery.py   pushing the bot's and the agents' words, and what to do when WeChat refuses
  bindings.py   followers (openid) bound to a 户号 after the identity check
  models.py     the followers' bindings (migration 0006)
"""
