//! Writer (`sxp.show`) and pretty-printer cases from the reference.

use sxp::{Value, parse, pretty};

#[track_caller]
fn check_show(v: Value, want: &str) {
    assert_eq!(v.to_string(), want);
    assert_eq!(parse(want).unwrap(), v, "reading back {want:?}");
}

fn s(x: &str) -> Value {
    Value::str(x)
}

#[test]
fn bare_and_quoted_strings() {
    check_show(s("-b---"), "-b---");
    check_show(s("vif5.0"), "vif5.0");
    check_show(s("aa:00:00:12:34:56"), "aa:00:00:12:34:56");
    check_show(s("file:/x"), "file:/x");
    check_show(s("~user/a_b"), "~user/a_b");
    check_show(s("@"), "@");
    check_show(s("/dev/sda1 ro"), "'/dev/sda1 ro'");
    check_show(s(""), "''");
    check_show(s("@@"), "'@@'");
    check_show(s("a+b"), "'a+b'");
    check_show(s("#x"), "'#x'");
    check_show(s("(x)"), "'(x)'");
    check_show(s("it's"), "\"it's\"");
    check_show(s("it's \"x\""), r#"'it\'s "x"'"#);
    check_show(s("say \"hi\""), r#"'say "hi"'"#);
    check_show(s("a\tb\nc\rd\\e"), r"'a\tb\nc\rd\\e'");
    check_show(s("\x00\x07\x1b\x7f\u{85}"), r"'\x00\x07\x1b\x7f\x85'");
    check_show(s("été 中"), "'été 中'");
}

#[test]
fn lists_and_numbers() {
    check_show(Value::list([]), "()");
    check_show(
        Value::list([
            s("domain"),
            Value::pair("id", 5u32),
            Value::pair("cpu_time", 2.996813645),
        ]),
        "(domain (id 5) (cpu_time 2.996813645))",
    );
    check_show(Value::list([Value::list([]), s("")]), "(() '')");
    assert_eq!(Value::from(-3i64), s("-3"));
    assert_eq!(Value::from(65535u16), s("65535"));
    assert_eq!(Value::from(u64::MAX), s("18446744073709551615"));
    assert_eq!(Value::from(1104537600.12f64), s("1104537600.12"));
}

#[track_caller]
fn check_pretty(text: &str, want: &str) {
    let v = parse(text).unwrap();
    let got = pretty(&v);
    assert_eq!(got, want, "\n--- got:\n{got}\n--- want:\n{want}");
    assert_eq!(parse(&got).unwrap(), v);
    for line in got.lines() {
        assert!(
            line.chars().count() <= 80 || !line.trim_start().contains(' '),
            "line too long: {line:?}"
        );
    }
}

#[test]
fn pretty_keeps_short_lists_inline() {
    check_pretty("(vm (name a) (memory 64))", "(vm (name a) (memory 64))");
    check_pretty("x", "x");
    check_pretty("()", "()");
    // Exactly 80 characters fits.
    let eighty = format!("(a {})", "b".repeat(76));
    check_pretty(&eighty, &eighty);
}

#[test]
fn pretty_breaks_long_lists() {
    let eighty_one = format!("(a {})", "b".repeat(77));
    check_pretty(&eighty_one, &format!("(a\n    {}\n)", "b".repeat(77)));
    check_pretty(
        "(vm (name ExampleDomain) (memory 128) (maxmem 256) (cpu 1) (vcpus 2) (restart always) \
         (image (linux (kernel /boot/vmlinuz-2.6.10-xenU) (ramdisk /boot/initrd.gz) (root '/dev/hda1 ro') (args 4))) \
         (device (vbd (uname phy:hda1) (dev hda1) (mode w))) \
         (device (vbd (uname file:/srv/d.img) (dev hda2) (mode r))) \
         (device (vif (mac aa:00:00:00:00:11) (bridge xen-br0))))",
        "(vm
    (name ExampleDomain)
    (memory 128)
    (maxmem 256)
    (cpu 1)
    (vcpus 2)
    (restart always)
    (image
        (linux
            (kernel /boot/vmlinuz-2.6.10-xenU)
            (ramdisk /boot/initrd.gz)
            (root '/dev/hda1 ro')
            (args 4)
        )
    )
    (device (vbd (uname phy:hda1) (dev hda1) (mode w)))
    (device (vbd (uname file:/srv/d.img) (dev hda2) (mode r)))
    (device (vif (mac aa:00:00:00:00:11) (bridge xen-br0)))
)",
    );
}

#[test]
fn pretty_domain_sxpr_from_the_reference() {
    check_pretty(
        "(domain (id 5) (name ttylinux) (memory 63) (maxmem 64) (state -b---) (cpu 0) \
         (cpu_time 2.996813645) (up_time 1234.56789012) (start_time 1104537600.12) \
         (console (status listening) (id 13) (domain 5) (local_port 13) (remote_port 1) (console_port 9605)) \
         (devices (vif (idx 0) (vif 0) (mac aa:00:00:12:34:56) (vifname vif5.0) (bridge xen-br0))) \
         (config (vm (name ttylinux) (memory 64) (image (linux (kernel /boot/vmlinuz) (root '/dev/sda1 ro'))) \
         (device (vbd (uname file:/x) (dev sda1) (mode w))))))",
        "(domain
    (id 5)
    (name ttylinux)
    (memory 63)
    (maxmem 64)
    (state -b---)
    (cpu 0)
    (cpu_time 2.996813645)
    (up_time 1234.56789012)
    (start_time 1104537600.12)
    (console
        (status listening)
        (id 13)
        (domain 5)
        (local_port 13)
        (remote_port 1)
        (console_port 9605)
    )
    (devices
        (vif
            (idx 0)
            (vif 0)
            (mac aa:00:00:12:34:56)
            (vifname vif5.0)
            (bridge xen-br0)
        )
    )
    (config
        (vm
            (name ttylinux)
            (memory 64)
            (image (linux (kernel /boot/vmlinuz) (root '/dev/sda1 ro')))
            (device (vbd (uname file:/x) (dev sda1) (mode w)))
        )
    )
)",
    );
}

#[test]
fn pretty_with_a_list_head_and_long_atoms() {
    let long = "x".repeat(90);
    check_pretty(&format!("(({long}) b)"), &format!("(({long})\n    b\n)"));
    check_pretty(&long, &long);
}
