"""The production profile on one machine: several Rasa servers and action servers on
loopback behind nginx, PostgreSQL as the tracker store and the product's database, Redis
for the conversation locks and the socket.io fan-out, RabbitMQ as Rasa's event broker
with the analytics consumer reading it (docs/production.md).

layout.py says where everything is (from the environment), files.py writes the
configuration files nginx and Rasa read, launcher.py starts, watches and stops the
processes; recovery.py hands conversations cut off by a dead action server to a person.
`python -m bot cluster up` runs it, the cluster tests and benchmarks drive it.
"""
