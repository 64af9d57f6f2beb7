"""The bottom layer: small helpers every other layer may use (no MXNet at import).

* :mod:`.atomic`  -- atomic, umask-honouring file writes
* :mod:`.threads` -- OMP_NUM_THREADS before MXNet loads
* :mod:`.metrics` -- top-k accuracy tallies
* :mod:`.errors`  -- the readable line of an MXNet error
* :mod:`.devices` -- ``--ctx``/``--num-gpus``/``--dtype`` checks
* :mod:`.signals` -- SIGTERM/SIGINT that stop a command with one line
"""
