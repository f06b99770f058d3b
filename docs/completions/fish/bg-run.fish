complete -c bg-run -l name -d 'A name to find the task by (letters, digits, ._:@+-)' -r
complete -c bg-run -l cwd -d 'Directory to run the command in [default: the current directory]' -r -F
complete -c bg-run -l env -d 'Set an environment variable for the command (repeatable)' -r
complete -c bg-run -l timeout -d 'Stop the command after this long: TERM to its group, then KILL after --grace' -r
complete -c bg-run -l grace -d 'Time between TERM and KILL when --timeout expires' -r
complete -c bg-run -l ready -d 'Return only once a line of output matches REGEX (dev servers)' -r
complete -c bg-run -l ready-port -d 'Return only once a process of the task listens on TCP PORT. Refused at once if something else already listens on it' -r
complete -c bg-run -l ready-http -d 'Return only once URL (plain http to 127.0.0.1, [::1] or localhost) answers with a status below 500. Refused at once if something else already listens on its port' -r
complete -c bg-run -l ready-timeout -d 'How long --ready, --ready-port or --ready-http waits before exiting 124 (the task keeps running)' -r
complete -c bg-run -l max-output -d 'Keep at most SIZE of output (e.g. 200M, 2G, none): past it, the middle is dropped and the start and the newest output kept; the task runs on [default: $BG_MAX_OUTPUT, else 1G]' -r
complete -c bg-run -l queue -d 'Run it in this queue: at most the queue\'s slots of its tasks run at once, in the order they were queued (across every project)' -r
complete -c bg-run -l slots -d 'Set the queue\'s slots (tasks run at once) from now on [default: 1]' -r
complete -c bg-run -l after -d 'Start only once these tasks (ids or names, comma-separated or repeated) have ended, however they ended' -r
complete -c bg-run -l after-ok -d 'Start only once these tasks have exited 0; if one did not, this task never starts and ends `skipped`' -r
complete -c bg-run -l restart -d 'Start the command again after it ends: on-failure (a non-zero exit or a signal) or always. The task ends once a run is not restarted; bg-kill and --timeout end it with its restarts' -r
complete -c bg-run -l max-restarts -d 'With --restart: at most N restarts (N+1 runs) [default: no limit]' -r
complete -c bg-run -l restart-delay -d 'With --restart: the first delay before a restart; it doubles after each one, up to 1m, and starts over after a run of 1m or more' -r
complete -c bg-run -l state-dir -d 'State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools]' -r -F
complete -c bg-run -l unique -d 'With --name: if a live task has that name, print it instead of starting another'
complete -c bg-run -l stdin-feed -d 'Feed the command\'s stdin from the task\'s `input` file, following appends (as `tail -f`), for long-lived sessions driven by other tools'
complete -c bg-run -l json -d 'Print the whole task record as JSON instead of the id'
complete -c bg-run -l internal-dispatch -d 'Runs the state dir\'s dispatcher (started by the tools themselves)'
complete -c bg-run -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bg-run -s V -l version -d 'Print version'
