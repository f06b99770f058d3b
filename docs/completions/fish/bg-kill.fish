complete -c bg-kill -l name -d 'Every running task of this name (repeatable)' -r
complete -c bg-kill -s s -l signal -d 'The first signal, by name or number (TERM, INT, HUP, KILL, 15, ...)' -r
complete -c bg-kill -l grace -d 'How long the tree gets to end after the signal before it is KILLed' -r
complete -c bg-kill -l state-dir -d 'State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools]' -r -F
complete -c bg-kill -l all -d 'Every running task of the current project (git root, else cwd)'
complete -c bg-kill -l all-projects -d 'Every running task, whatever its project'
complete -c bg-kill -l no-kill -d 'Send the signal only: no KILL after the grace, and the task is not marked as killed (for HUP, USR1 and the like)'
complete -c bg-kill -l json -d 'JSON: an array with, for each task, what was signalled and the outcome'
complete -c bg-kill -s h -l help -d 'Print help'
complete -c bg-kill -s V -l version -d 'Print version'
