"""`testbed deploy` (docs/deploy.md): the bench's daemons installed and run as services
on the inventory's hosts over SSH, pyinfra style — each host's facts, a plan of
operations, the changes it would make, then those changes; a second deploy changes
nothing. The command is coordinator/commands/deploy.py; `runner` deploys, `manage`
looks at, stops, reads or removes what a deploy left.

Nothing is imported here: the command imports what it needs (asyncssh only then).
"""
