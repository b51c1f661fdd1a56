"""`scanner sweep`: subnets x ports at a high rate, sharded, resumable, through proxies too.

Layout: `plan` (what to sweep, pure), `records` (the JSON line, one place),
`state` (resume files), `worker` (one process's connect loop), `runner` (spawns
the workers and merges their streams), `cli` (flags and the subcommand).
"""
