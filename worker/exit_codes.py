"""Exit codes a worker process ends with; the supervisor decides on restarts from them."""

OK = 0                  # LIVE: stopped on request; HISTORY: every series covered
HISTORY_INCOMPLETE = 1  # HISTORY finished, some series failed
INTERRUPTED = 3         # stopped on request before the HISTORY run was finished
TEMPORARY_FAILURE = 75  # EX_TEMPFAIL: could not start (exchange or store unreachable); retry later
BAD_CONFIG = 78         # EX_CONFIG: this exchange's config cannot work; restarting will not help
