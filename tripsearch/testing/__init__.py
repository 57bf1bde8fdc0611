"""What the tests and the benchmarks share: throw-away Elasticsearch clusters and RabbitMQ brokers (pytest fixtures).

Needs the ``dev`` extra (pytest) and a checkout (the services start through ``scripts/``).
"""
