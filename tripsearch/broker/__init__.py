"""Trip events over RabbitMQ: the event format and publisher, and the worker that applies them to a backend."""
