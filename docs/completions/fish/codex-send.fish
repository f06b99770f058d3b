complete -c codex-send -l to -d 'Append to this buffer file (read by `tail -f FILE | codex ...`)' -r -F
complete -c codex-send -l task -d 'Send to the session task started by --start' -r
complete -c codex-send -l protocol -d 'The server: mcp (mcp-server) or app (app-server) [default: the buffer\'s or session\'s, else app]' -r
complete -c codex-send -l thread -d 'Continue this thread (conversation id) rather than the last one' -r
complete -c codex-send -l cwd -d 'The working directory Codex works in [default: the current directory]' -r -F
complete -c codex-send -l approval-policy -d 'untrusted, on-failure, on-request or never (what the server\'s version takes)' -r
complete -c codex-send -l sandbox -d 'read-only, workspace-write or danger-full-access' -r
complete -c codex-send -l model -r
complete -c codex-send -l config -d 'A config.toml override, KEY=VALUE (VALUE as JSON if it is JSON); repeatable' -r
complete -c codex-send -l base-instructions -r
complete -c codex-send -l developer-instructions -r
complete -c codex-send -l approve -d 'Approve the pending server request ID' -r
complete -c codex-send -l approve-for-session -d 'Approve it, and the like of it for the rest of the session' -r
complete -c codex-send -l deny -d 'Deny it (the model is told, with --reason where the server takes one)' -r
complete -c codex-send -l reason -r
complete -c codex-send -l cancel -d 'Deny it and stop the turn' -r
complete -c codex-send -l codex-version -d 'The Codex version the lines are for (--to and printing; a session knows its own)' -r
complete -c codex-send -l timeout -d 'How long to wait for a new thread\'s id in the session\'s output' -r
complete -c codex-send -l codex -d 'The Codex program for --start [default: $CODEX_SEND_CODEX or codex]' -r -F
complete -c codex-send -l name -d 'A name for the session task (--start)' -r
complete -c codex-send -l state-dir -d 'State directory [default: $BG_STATE_DIR, $XDG_STATE_HOME/bg-tools, ~/.local/state/bg-tools]' -r -F
complete -c codex-send -l new-thread -d 'Start a conversation rather than continue the last one'
complete -c codex-send -l interrupt -d 'Stop the running turn (turn/interrupt; notifications/cancelled for mcp-server)'
complete -c codex-send -l force -d 'Answer even what the session\'s output does not show pending'
complete -c codex-send -l start -d 'Start Codex as a session task and print its id'
complete -c codex-send -s h -l help -d 'Print help'
complete -c codex-send -s V -l version -d 'Print version'
