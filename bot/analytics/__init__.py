"""Analytics from Rasa's event stream (the production profile): the consumer
(consumer.py, `python -m bot analytics consume`) reads the events Rasa's `pika` event
broker puts in RabbitMQ and keeps each conversation's facts and each day's figures in the
database (bookkeeping.py, models.py), so the supervisor dashboard reads a few rows per
day instead of scanning trackers. It also records each conversation the bot had to
apologise in because no action server answered (the interruptions the recovery worker,
bot/cluster/recovery.py, hands to a person).

Where the dashboard's containment and fallback figures come from is configuration,
`ANALYTICS_SOURCE`: `database` (the default: the conversations the action server counts
and the handoff tickets; no fallback figure) or `events` (these tables; set it where the
consumer runs). An explicit switch rather than "whichever has data": a consumer that ran
once, or stopped, must not silently change what the supervisor reads. Categories, hot
spots, priorities, deadlines and satisfaction are ticket and outage facts and come from
their own tables either way.
"""
