#!/bin/sh
# exec replaces this shell, so Python runs as PID 1 and receives Docker's SIGTERM itself.
exec python -m supervisor "$@"
