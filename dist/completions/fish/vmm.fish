complete -c vmm -l name -d 'Domain name (with --restore/--incoming: overrides the image\'s)' -r
complete -c vmm -l domid -d 'Domain id (with --restore/--incoming: overrides the image\'s)' -r
complete -c vmm -l memory -d 'RAM at boot, MiB' -r
complete -c vmm -l maxmem -d 'Maximum RAM, MiB (default: --memory)' -r
complete -c vmm -l vcpus -d 'Number of vCPUs' -r
complete -c vmm -l kernel -d '`minios` (built in) or the path of an ELF64 kernel built for our ABI' -r
complete -c vmm -l cmdline -d 'Kernel command line' -r
complete -c vmm -l ramdisk -d 'Initial ramdisk for a Linux kernel (bzImage or PVH vmlinux)' -r
complete -c vmm -l cpu -d 'Pin every vCPU to this host CPU' -r
complete -c vmm -l socket -d 'Control socket path (mode 0600)' -r -F
complete -c vmm -l record -d 'Runtime record (JSON) written once the socket is ready' -r -F
complete -c vmm -l log -d 'Log file (default: stderr)' -r -F
complete -c vmm -l disk -d 'A virtual disk, `file:PATH,DEV,MODE[,direct]` or `phy:/dev/X,DEV,MODE` (MODE r, w or w!). Repeatable' -r
complete -c vmm -l vif -d 'A virtual network interface, `mac=aa:00:00:12:34:56,bridge=BR` (both optional; a random aa:00:00 MAC without mac=). Repeatable' -r
complete -c vmm -l restore -d 'Restore the domain saved in FILE instead of booting a kernel (memory, vCPUs, kernel come from the image; --name/--domid override)' -r -F
complete -c vmm -l incoming -d 'Receive a migrating domain: listen on ADDR:PORT for one source, which must present --incoming-token. Ready (for --detach) once listening' -r
complete -c vmm -l incoming-token -d 'The token a migration source must present (or env VMM_INCOMING_TOKEN)' -r
complete -c vmm -l jail-dir -d 'Jail the VMM once the domain is built: new mount, pid, ipc and uts namespaces, an empty read-only root mounted on DIR (created if missing), no capabilities, `--jail-uid`/`--jail-gid`, and a seccomp filter per thread (see docs/jail.md). xend passes this for every domain unless `(vmm-jail no)`' -r -F
complete -c vmm -l jail-uid -d 'The uid the jailed VMM runs as (not 0)' -r
complete -c vmm -l jail-gid -d 'The gid the jailed VMM runs as (not 0)' -r
complete -c vmm -l cgroup -d 'Join the cgroup directory DIR (write the VMM\'s pid to DIR/cgroup.procs) before anything else; repeatable, one per cgroup v1 hierarchy. xend passes the domain\'s cgroups' -r -F
complete -c vmm -l detach -d 'Run in the background in its own session; print the pid once ready'
complete -c vmm -l stdio -d 'Console on stdin/stdout'
complete -c vmm -l exit-on-shutdown -d 'Exit when the guest shuts down or crashes (exit code 0 for a clean shutdown, 2 for a crash) instead of waiting for `destroy`'
complete -c vmm -l paused -d 'Start the domain (booted, restored or migrated in) paused: its vCPUs wait for `unpause`'
complete -c vmm -s h -l help -d 'Print help'
complete -c vmm -s V -l version -d 'Print version'
