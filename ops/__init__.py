"""ops: what runs civicbus rather than what civicbus is — the ``civicbus`` command line, the demo and the
development stack (Kafka and FerretDB on this machine). It sits above the services and may import them; the kernel
(``civicbus/``) and the services never import ``ops``."""
