complete -c bg-remind -l task -d 'Wait for this task (id, unique id prefix, or name) to end instead' -r
complete -c bg-remind -l timeout -d 'With --task: give up after DUR and exit 124, the first line saying that the task still runs and the command that waits again' -r
complete -c bg-remind -l silent -d 'With --task: also wake (exit 121) once the task has printed nothing for DUR: it may be stuck, or waiting for input' -r
complete -c bg-remind -l lines -d 'With --task: how many of the task\'s last lines of output to print' -r
complete -c bg-remind -l state-dir -d 'State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools]' -r -F
complete -c bg-remind -l json -d 'JSON: what was due, or the task\'s record with the outcome'
complete -c bg-remind -s h -l help -d 'Print help'
complete -c bg-remind -s V -l version -d 'Print version'
