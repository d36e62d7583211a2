# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_xtop_global_optspecs
    string join \n H/host= token= cacert= readonly theme= d/delay= sort= fields= filter= host-cpu-percent mouse e/escape= config= b/batch i/iterations= n/networks x/vbds v/vcpus r/repeat-header f/full-name z/dom0-first csv= json end-time= script= keep-going launch h/help V/version
end

function __fish_xtop_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_xtop_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_xtop_using_subcommand
    set -l cmd (__fish_xtop_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c xtop -n "__fish_xtop_needs_command" -s H -l host -d 'xend URL (http://, https:// or unix:PATH); repeat for several hosts in one table [default: the settings file\'s `hosts`, else $XEND_URL, else the local socket named in xend\'s config]' -r
complete -c xtop -n "__fish_xtop_needs_command" -l token -d 'Bearer token for xend [default: $XEND_TOKEN, else xend\'s token file if readable]' -r
complete -c xtop -n "__fish_xtop_needs_command" -l cacert -d 'PEM file of CA certificates to trust for https:// URLs instead of the system\'s [default: $XEND_CACERT]' -r -F
complete -c xtop -n "__fish_xtop_needs_command" -l theme -d 'Theme: dark, light, high-contrast, monochrome, or a .toml file' -r
complete -c xtop -n "__fish_xtop_needs_command" -s d -l delay -d 'Seconds between refreshes (fractions allowed) [default: 3]' -r
complete -c xtop -n "__fish_xtop_needs_command" -l sort -d 'Sort by FIELD (`-FIELD` reverses), e.g. `-cpu`' -r
complete -c xtop -n "__fish_xtop_needs_command" -l fields -d 'Columns to show, comma-separated (e.g. `id,name,state,cpu`)' -r
complete -c xtop -n "__fish_xtop_needs_command" -l filter -d 'Show only domains whose name matches REGEX (`!REGEX` inverts)' -r
complete -c xtop -n "__fish_xtop_needs_command" -s e -l escape -d 'Console escape key (`^]`, `ctrl-t`, ...) [default: Ctrl-]]' -r
complete -c xtop -n "__fish_xtop_needs_command" -l config -d 'Settings file [default: $XTOP_CONFIG or ~/.config/xtop/config.toml]' -r -F
complete -c xtop -n "__fish_xtop_needs_command" -s i -l iterations -d 'Batch: number of refreshes' -r
complete -c xtop -n "__fish_xtop_needs_command" -l csv -d 'CSV to FILE (`-` = stdout), one row per domain per refresh with host totals (implies batch)' -r
complete -c xtop -n "__fish_xtop_needs_command" -l end-time -d 'Batch: stop at this time (`+SECS`, seconds since the epoch, `YYYY-MM-DD HH:MM:SS` or `HH:MM[:SS]`, UTC)' -r
complete -c xtop -n "__fish_xtop_needs_command" -l script -d 'Script mode: run the commands in FILE (`-` = stdin), no terminal UI' -r
complete -c xtop -n "__fish_xtop_needs_command" -l readonly -d 'No actions: no key pauses, shuts down, reboots, destroys, saves, migrates, schedules, attaches a console, edits or creates; the prompt and scripts refuse them'
complete -c xtop -n "__fish_xtop_needs_command" -l host-cpu-percent -d 'CPU% as a share of the whole host (virt-top) rather than of one CPU'
complete -c xtop -n "__fish_xtop_needs_command" -l mouse -d 'Turn the mouse on (click to select, click a header to sort)'
complete -c xtop -n "__fish_xtop_needs_command" -s b -l batch -d 'Batch mode: print xentop-compatible text to stdout, no terminal UI'
complete -c xtop -n "__fish_xtop_needs_command" -s n -l networks -d 'Batch: network rows under each domain'
complete -c xtop -n "__fish_xtop_needs_command" -s x -l vbds -d 'Batch: block device rows under each domain'
complete -c xtop -n "__fish_xtop_needs_command" -s v -l vcpus -d 'Batch: vCPU rows under each domain'
complete -c xtop -n "__fish_xtop_needs_command" -s r -l repeat-header -d 'Batch: repeat the header before each domain'
complete -c xtop -n "__fish_xtop_needs_command" -s f -l full-name -d 'Batch: full domain names (xentop cuts them at 10)'
complete -c xtop -n "__fish_xtop_needs_command" -s z -l dom0-first -d 'Batch: Domain-0 first whatever the sort'
complete -c xtop -n "__fish_xtop_needs_command" -l json -d 'One JSON object per refresh on stdout (implies batch)'
complete -c xtop -n "__fish_xtop_needs_command" -l keep-going -d 'Script mode: go on after a failing command (the exit status still says so)'
complete -c xtop -n "__fish_xtop_needs_command" -l launch -d 'Start a local xend if none answers and create example domains if there are none, then open xtop'
complete -c xtop -n "__fish_xtop_needs_command" -s h -l help -d 'Print help'
complete -c xtop -n "__fish_xtop_needs_command" -s V -l version -d 'Print version'
complete -c xtop -n "__fish_xtop_needs_command" -f -a "up" -d 'Same as `--launch`: start xend and example domains if needed, then open xtop'
complete -c xtop -n "__fish_xtop_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c xtop -n "__fish_xtop_using_subcommand up" -s h -l help -d 'Print help'
complete -c xtop -n "__fish_xtop_using_subcommand help; and not __fish_seen_subcommand_from up help" -f -a "up" -d 'Same as `--launch`: start xend and example domains if needed, then open xtop'
complete -c xtop -n "__fish_xtop_using_subcommand help; and not __fish_seen_subcommand_from up help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
