"""What the supervisor and the worker processes share: config, series, time, exit codes,
the messages between them and the producer side of logging. Imports neither of them."""
