# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_xend_global_optspecs
    string join \n c/config= h/help V/version
end

function __fish_xend_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_xend_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_xend_using_subcommand
    set -l cmd (__fish_xend_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c xend -n "__fish_xend_needs_command" -s c -l config -d 'xend-config.sxp to read (else $XEND_CONFIG, else /etc/xen/xend-config.sxp if it exists, else the built-in defaults)' -r -F
complete -c xend -n "__fish_xend_needs_command" -s h -l help -d 'Print help'
complete -c xend -n "__fish_xend_needs_command" -s V -l version -d 'Print version'
complete -c xend -n "__fish_xend_needs_command" -f -a "start" -d 'Start xend in the background; returns once the API answers'
complete -c xend -n "__fish_xend_needs_command" -f -a "stop" -d 'Stop the running xend (domains keep running) and wait until it has exited'
complete -c xend -n "__fish_xend_needs_command" -f -a "restart" -d 'Stop, then start'
complete -c xend -n "__fish_xend_needs_command" -f -a "status" -d 'Exit 0 when xend is running and answers, 1 when it runs but does not answer, 3 when it is not running'
complete -c xend -n "__fish_xend_needs_command" -f -a "foreground" -d 'Run in the foreground (development, service managers, tests)'
complete -c xend -n "__fish_xend_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c xend -n "__fish_xend_using_subcommand start" -s c -l config -d 'xend-config.sxp to read (else $XEND_CONFIG, else /etc/xen/xend-config.sxp if it exists, else the built-in defaults)' -r -F
complete -c xend -n "__fish_xend_using_subcommand start" -s h -l help -d 'Print help'
complete -c xend -n "__fish_xend_using_subcommand stop" -s c -l config -d 'xend-config.sxp to read (else $XEND_CONFIG, else /etc/xen/xend-config.sxp if it exists, else the built-in defaults)' -r -F
complete -c xend -n "__fish_xend_using_subcommand stop" -s h -l help -d 'Print help'
complete -c xend -n "__fish_xend_using_subcommand restart" -s c -l config -d 'xend-config.sxp to read (else $XEND_CONFIG, else /etc/xen/xend-config.sxp if it exists, else the built-in defaults)' -r -F
complete -c xend -n "__fish_xend_using_subcommand restart" -s h -l help -d 'Print help'
complete -c xend -n "__fish_xend_using_subcommand status" -s c -l config -d 'xend-config.sxp to read (else $XEND_CONFIG, else /etc/xen/xend-config.sxp if it exists, else the built-in defaults)' -r -F
complete -c xend -n "__fish_xend_using_subcommand status" -s h -l help -d 'Print help'
complete -c xend -n "__fish_xend_using_subcommand foreground" -s c -l config -d 'xend-config.sxp to read (else $XEND_CONFIG, else /etc/xen/xend-config.sxp if it exists, else the built-in defaults)' -r -F
complete -c xend -n "__fish_xend_using_subcommand foreground" -l detached -d 'Internal: started by `xend start`; detach into a new session'
complete -c xend -n "__fish_xend_using_subcommand foreground" -s h -l help -d 'Print help'
complete -c xend -n "__fish_xend_using_subcommand help; and not __fish_seen_subcommand_from start stop restart status foreground help" -f -a "start" -d 'Start xend in the background; returns once the API answers'
complete -c xend -n "__fish_xend_using_subcommand help; and not __fish_seen_subcommand_from start stop restart status foreground help" -f -a "stop" -d 'Stop the running xend (domains keep running) and wait until it has exited'
complete -c xend -n "__fish_xend_using_subcommand help; and not __fish_seen_subcommand_from start stop restart status foreground help" -f -a "restart" -d 'Stop, then start'
complete -c xend -n "__fish_xend_using_subcommand help; and not __fish_seen_subcommand_from start stop restart status foreground help" -f -a "status" -d 'Exit 0 when xend is running and answers, 1 when it runs but does not answer, 3 when it is not running'
complete -c xend -n "__fish_xend_using_subcommand help; and not __fish_seen_subcommand_from start stop restart status foreground help" -f -a "foreground" -d 'Run in the foreground (development, service managers, tests)'
complete -c xend -n "__fish_xend_using_subcommand help; and not __fish_seen_subcommand_from start stop restart status foreground help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
