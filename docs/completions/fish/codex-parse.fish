complete -c codex-parse -l task -d 'Read the session task started by codex-send (its output and input feed)' -r
complete -c codex-parse -l input -d 'The client\'s side (what was sent), to see answered approvals and requests that never got a response [--task: its input feed]' -r -F
complete -c codex-parse -l protocol -d 'Force the protocol: mcp-server, app-server, exec, exec-legacy' -r
complete -c codex-parse -l last -d 'Only the last N requests (or messages)' -r
complete -c codex-parse -l request -d 'Only this request (mcp-server request id, or turn id)' -r
complete -c codex-parse -l idle -d 'With --stuck: an open turn silent this long is stuck' -r
complete -c codex-parse -l wait -d 'Block until this request or turn ends: exit 0 completed, 1 failed or interrupted' -r
complete -c codex-parse -l timeout -d 'With --wait: give up after DUR, exit 124' -r
complete -c codex-parse -l state-dir -d 'State directory, for --task' -r -F
complete -c codex-parse -l messages -d 'Every agent message, whole (assembled from deltas if the final one is missing)'
complete -c codex-parse -l reasoning -d 'The model\'s reasoning summaries'
complete -c codex-parse -l tokens -d 'Token usage per request'
complete -c codex-parse -l approvals -d 'Pending approvals, each with the id to answer'
complete -c codex-parse -l stuck -d 'Why the session is stuck, if it is: exit 1 then'
complete -c codex-parse -l follow -d 'Print events as they arrive, one line each, until the stream ends'
complete -c codex-parse -l json -d 'JSON (docs/ARCHITECTURE.md, "Summary format")'
complete -c codex-parse -l no-redact -d 'Print secrets as they are (API keys, tokens and passwords are redacted by default)'
complete -c codex-parse -s h -l help -d 'Print help'
complete -c codex-parse -s V -l version -d 'Print version'
