complete -c bg-check -l state -d 'List only tasks in these states (repeatable; also `live`, `finished`)' -r
complete -c bg-check -l reader -d 'Whose cursor to use: each reader sees every byte once' -r
complete -c bg-check -l tail -d 'Print only the last N lines (of the new output, or of all with --all-output)' -r
complete -c bg-check -l grep -d 'Print only lines matching REGEX' -r
complete -c bg-check -l max-bytes -d 'Print at most this many bytes of output (the newest); 0 for no limit. What is left out is announced with the path of the full output' -r
complete -c bg-check -l range -d 'Print the output between two offsets of it as written (a paced --follow names them), whatever this reader has seen; the cursor stays where it is' -r
complete -c bg-check -l timeout -d 'With --wait or --follow: give up after DUR and exit 124' -r
complete -c bg-check -l prune -d 'Remove finished tasks older than AGE [default: $BG_RETENTION or 7d], then outputs while over the budget ($BG_STATE_MAX)' -r
complete -c bg-check -l state-dir -d 'State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools]' -r -F
complete -c bg-check -l json -d 'JSON: the task record (with the ports it listens on), or an array of records for a list (or of ports, with --ports)'
complete -c bg-check -l all -d 'List the tasks of every project, not only this one (git root, else cwd); with --notify, report every project\'s; with --ports, their ports'
complete -c bg-check -l all-output -d 'Print the whole output, not only what is new'
complete -c bg-check -l strip-ansi -d 'Remove colours and other escape sequences; keep what carriage returns left visible'
complete -c bg-check -l wait -d 'Wait for the task to end, then print and exit with its exit status'
complete -c bg-check -l follow -d 'Stream the task\'s output until it ends, then exit with its exit status'
complete -c bg-check -l pace -d 'With --follow: feed an agent host that batches and rate-limits a command\'s lines (Claude Code\'s Monitor): one write per batch, at most 2500 bytes, about one per 2.5 s after a burst of 3; lines that do not fit are summed up with the command that shows them; the status line always comes; the cursor moves past a batch a second after it was printed. Implies --strip-ansi'
complete -c bg-check -l notify -d 'Print one line per task of this project finished since this reader\'s last --notify in it (with --all: of any project, since the last --notify --all)'
complete -c bg-check -l disk -d 'Show the state dir\'s disk use, its budget ($BG_STATE_MAX, default 10G) and free space, and every task\'s size, largest first'
complete -c bg-check -l queues -d 'Show each queue (bg-run --queue): its slots, its running tasks, and its queued tasks in the order they will start'
complete -c bg-check -l ports -d 'Show the TCP ports the running tasks of this project (--all: of every project) listen on: one line per port, with the task and pids'
complete -c bg-check -s h -l help -d 'Print help'
complete -c bg-check -s V -l version -d 'Print version'
