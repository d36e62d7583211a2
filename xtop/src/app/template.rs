//! The config `n` opens for a new domain.

/// The template `n` opens.
pub const NEW_TEMPLATE: &str = r#"# New domain. Edit, save and quit to create it; leave it unchanged to cancel.
# Lines are `key = value`; strings in quotes; `#` starts a comment.

# Name: letters, digits and _-.:+ ; must not start with a digit, - or . (no ..).
name = "newdom"

# Memory target and maximum, MiB.
memory = 32
# maxmem = 64

# Virtual CPUs, and an optional host CPU to pin to.
vcpus = 1
# cpu = 0

# No `kernel` line boots the built-in minios guest; its command line can run
# commands at boot, e.g. extra = "autorun=echo hello".
# extra = ""

# What to do when the guest stops: onreboot (restart on reboot), always, never.
restart = "onreboot"
"#;
