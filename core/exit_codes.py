"""Every exit code in the product, in one place.

The command's codes are a contract (``design.md`` section 2); a worker's codes tell the
supervisor whether a restart can help.
"""

# -- the command (``python -m supervisor`` / ``tda-collector``) -----------------------------
OK = 0                  # success; LIVE: stopped by SIGTERM/SIGINT; HISTORY: every series covered
HISTORY_INCOMPLETE = 1  # HISTORY finished, some series failed; AUDIT: repairable gaps left
UNREACHABLE = 1         # probe: the exchange could not be reached
USAGE = 2               # bad usage or bad config; LIVE: every exchange's config unusable
BOOT_FAILURE = 3        # the supervisor itself could not start (store, health port, paths)

# -- a worker process (seen by the supervisor only) ----------------------------------------
INTERRUPTED = 3         # stopped on request before the HISTORY run was finished
TEMPORARY_FAILURE = 75  # EX_TEMPFAIL: could not start (exchange or store unreachable); retry later
BAD_CONFIG = 78         # EX_CONFIG: this exchange's config cannot work; restarting will not help
