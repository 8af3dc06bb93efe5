# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_nfslock_global_optspecs
    string join \n q/quiet v/verbose io-timeout= h/help V/version
end

function __fish_nfslock_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_nfslock_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_nfslock_using_subcommand
    set -l cmd (__fish_nfslock_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c nfslock -n "__fish_nfslock_needs_command" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_needs_command" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_needs_command" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_needs_command" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_needs_command" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "acquire" -d 'Take the lock for a process (by default the calling shell), then exit'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "release" -d 'Release a lock taken by `acquire`. Exit 76 if it is not yours'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "touch" -d 'Refresh the lock\'s mtime (file-system time). Exit 76 if not yours'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "status" -d 'Show who holds the lock. Exit 0 free, 75 held, 1 held but stale'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "inspect" -d 'Show who holds the lock. Exit 0 free, 75 held, 1 held but stale'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "break" -d 'Break a stale lock (dead owner, expired lease, or older than DUR)'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "run" -d 'Hold the lock while a command runs, refreshing it; exit with the command\'s status (76 if the lock was lost meanwhile)'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "list" -d 'List the locks in directories (or at lock paths) with their holders. Read-only. Exit 0 when the listing is complete'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "sweep" -d 'Break every stale lock in directories, by the rules of `break`, and remove leftovers of dead processes'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh or fish) on stdout'
complete -c nfslock -n "__fish_nfslock_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -s w -l wait -l timeout -d 'Wait at most DUR (default: wait forever; 0 means -n)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l pid -d 'The owner process (default: the parent, i.e. the calling shell). Use `--pid $$` in subshells and command substitutions' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l lease -d 'Let others break the lock if it is not touched for DUR' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l stale-after -d 'Also break locks older than DUR (file-system time) that have no lease and no provably alive owner (another host\'s, another tool\'s); never a valid lease or a live owner' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -s E -l conflict-exit-code -d 'Exit status when busy or timed out (default 75)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l poll-max -d 'Longest pause between polls while waiting' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l on-lost -d 'With --keepalive, what the keeper does to the owner when the lock is lost: term (TERM, then KILL after --kill-after), kill, warn, or signal:NAME' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l kill-after -d 'Grace between TERM and KILL for --on-lost term' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l slots -d 'Take one of N slots of the lock (at most N holders at once, on all hosts): slot K is the lock LOCK.slot-K' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -s n -l nonblock -d 'Fail at once if the lock is busy (after breaking stale locks)'
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l print-token -d 'Print the lock\'s token on stdout, for `release --token`'
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -l keepalive -d 'Start a detached keeper that refreshes the lock while the owner lives and releases it as soon as the owner dies (lease default 60s). It outlives SIGTERM, SIGINT and SIGHUP; only its owner\'s end ends it'
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -s s -l shared -d 'Take the lock shared, with any number of other readers, never with a writer; a waiting writer goes before readers that come after it'
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -s x -l exclusive -d 'Take the lock exclusive: the default (flock\'s spelling)'
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand acquire" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand release" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand release" -l pid -d 'The owner process (default: the parent, i.e. the calling shell)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand release" -l token -d 'The token printed by `acquire --print-token`' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand release" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand release" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand release" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand release" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand touch" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand touch" -l pid -d 'The owner process (default: the parent, i.e. the calling shell)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand touch" -l token -d 'The token printed by `acquire --print-token`' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand touch" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand touch" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand touch" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand touch" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand status" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand status" -l stale-after -d 'Also call the lock stale when older than DUR, if it has no lease and no provably alive owner' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand status" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand status" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand status" -l json -d 'Print one JSON object on stdout'
complete -c nfslock -n "__fish_nfslock_using_subcommand status" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand status" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand inspect" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand inspect" -l stale-after -d 'Also call the lock stale when older than DUR, if it has no lease and no provably alive owner' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand inspect" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand inspect" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand inspect" -l json -d 'Print one JSON object on stdout'
complete -c nfslock -n "__fish_nfslock_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -l older-than -d 'Also break a lock older than DUR (file-system time) that has no lease and no provably alive owner; never a valid lease or a live owner' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -l slot -d 'Break slot K of a slotted lock (the lock LOCK.slot-K)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -l force -d 'Break even a live lock'
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -l dry-run -d 'Say what would be done, change nothing'
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -l json -d 'Print one JSON object on stdout'
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand break" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s w -l wait -l timeout -d 'Wait at most DUR for the lock (default: forever; 0 means -n)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -l stale-after -d 'Also break locks older than DUR (file-system time) that have no lease and no provably alive owner (another host\'s, another tool\'s); never a valid lease or a live owner' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -l lease -d 'Others may break the lock if the heartbeat stops for DUR; the heartbeat refreshes it every DUR/3' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -l on-lost -d 'When the lock is lost: term (TERM, then KILL after --kill-after), kill, warn, or signal:NAME. The exit status is 76 whatever the policy' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -l kill-after -d 'Grace between TERM and KILL for --on-lost term' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -l slots -d 'Hold one of N slots of the lock (at most N commands at once, on all hosts); the command sees NFSLOCK_SLOT (1..N) and NFSLOCK_SLOTS' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -l min-interval -d 'Run the command only if it last started at least DUR ago (in file-system time, on any host); else release and exit 75 (or -E N)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s E -l conflict-exit-code -d 'Exit status when busy or timed out (default 75)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -l poll-max -d 'Longest pause between polls while waiting' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s c -l command -d 'Run STRING with /bin/sh -c (may also follow LOCK, as with flock)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s n -l nonblock -d 'Fail at once if the lock is busy (after breaking stale locks)'
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -l fence -d 'Give the command NFSLOCK_FENCE, a counter that grows on every fenced acquisition of this lock'
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s s -l shared -d 'Hold the lock shared, with any number of other readers, never with a writer; a waiting writer goes before readers that come after it'
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s x -l exclusive -d 'Hold the lock exclusive: the default (flock\'s spelling)'
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand run" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand list" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand list" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand list" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand list" -l json -d 'Print one JSON object, {"locks": [...]}, each lock as `status --json` prints it'
complete -c nfslock -n "__fish_nfslock_using_subcommand list" -l stale-only -d 'Only stale locks'
complete -c nfslock -n "__fish_nfslock_using_subcommand list" -l all -d 'Also each lock\'s auxiliary files (claims, pins, private names, probes), with whether the process behind each is alive'
complete -c nfslock -n "__fish_nfslock_using_subcommand list" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand list" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand sweep" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand sweep" -l older-than -d 'Also break locks older than DUR (file-system time) that have no lease and no provably alive owner' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand sweep" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand sweep" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand sweep" -l rebooted -d 'Only locks left by an earlier boot of this machine (run it at boot)'
complete -c nfslock -n "__fish_nfslock_using_subcommand sweep" -l dry-run -d 'Say what would be done, change nothing'
complete -c nfslock -n "__fish_nfslock_using_subcommand sweep" -l json -d 'Print one JSON object, {"actions": [...]}, instead of a line per action on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand sweep" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand sweep" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand completions" -l io-timeout -d 'Give up (exit 74) when an I/O error persists this long (default 30s)' -r
complete -c nfslock -n "__fish_nfslock_using_subcommand completions" -s q -l quiet -d 'Print nothing but usage errors'
complete -c nfslock -n "__fish_nfslock_using_subcommand completions" -s v -l verbose -d 'Explain waits, breaks and decisions on stderr'
complete -c nfslock -n "__fish_nfslock_using_subcommand completions" -s h -l help -d 'Print help'
complete -c nfslock -n "__fish_nfslock_using_subcommand completions" -s V -l version -d 'Print version'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "acquire" -d 'Take the lock for a process (by default the calling shell), then exit'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "release" -d 'Release a lock taken by `acquire`. Exit 76 if it is not yours'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "touch" -d 'Refresh the lock\'s mtime (file-system time). Exit 76 if not yours'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "status" -d 'Show who holds the lock. Exit 0 free, 75 held, 1 held but stale'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "break" -d 'Break a stale lock (dead owner, expired lease, or older than DUR)'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "run" -d 'Hold the lock while a command runs, refreshing it; exit with the command\'s status (76 if the lock was lost meanwhile)'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "list" -d 'List the locks in directories (or at lock paths) with their holders. Read-only. Exit 0 when the listing is complete'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "sweep" -d 'Break every stale lock in directories, by the rules of `break`, and remove leftovers of dead processes'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "completions" -d 'Print a shell completion script (bash, zsh or fish) on stdout'
complete -c nfslock -n "__fish_nfslock_using_subcommand help; and not __fish_seen_subcommand_from acquire release touch status break run list sweep completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
